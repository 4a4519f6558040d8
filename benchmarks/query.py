"""The event query service against hand-written SQL of the same meaning, and the append cost of its indexes.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python benchmarks/query.py --events 1000000      # the issue's size
    .venv/bin/python benchmarks/query.py --events 100000 --repeat 100 --json

Loads ``--events`` identity events over 12 month partitions into a scratch
database (dropped at the end), then times four queries, each with varying
values, ours (``EventQueryService.query_events``: compile, horizon, snapshot,
timeout, decode and checksum check) and the baseline (the hand-written SQL,
same columns, same decoding with ``store.decode_row``) taking turns, each
going first every other run:

- indexed JSON-path equality (``data.email == X``: the GIN index),
- metadata user id (``user_id=X``),
- type + time range (one event type, one month),
- full text (``websearch_to_tsquery`` with the optional full-text index).

p50/p95 in ms and our rate as a share of the baseline's. Then the append
cost of the indexes of migration 0007 and of the optional full-text index:
batch (1,000 events) and single-event append rates with each set of indexes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evstore.core import PostgreSQLEventStore
from evstore.core.config import load_settings
from evstore.core.query import EventQueryService, EventSearchCriteria, f
from evstore.core.store.persistence import EventMetadata, EventRecord
from evstore.core.store.postgres import COLUMNS

from benchmarks.scratch import DEFAULT_URL, scratch_database
from benchmarks.timing import log

START = datetime(2025, 1, 1, tzinfo=UTC)
TYPES = ["UserRegistered", "UserLoggedIn", "EmailChanged", "PasswordChanged", "ProfileUpdated"]
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
USERS = 5000


def make_event(rng: random.Random, n: int, user: int, at: datetime) -> EventRecord:
    return EventRecord(
        aggregate_id=f"user-{user}", aggregate_type="User", event_type=rng.choice(TYPES),
        event_data={"email": f"user{user}.{n % 7}@example.com", "plan": rng.choice(["free", "pro"]),
                    "note": " ".join(rng.choices(WORDS, k=6)), "n": n},
        metadata=EventMetadata(user_id=f"user-{user}", correlation_id=f"corr-{n // 3}", source="bench"),
        created_at=at)


LOADED: list[int] = []  # the users that have events


def load(store: PostgreSQLEventStore, total: int) -> None:
    rng = random.Random(7)
    span = 365 * 24 * 3600
    done = 0
    started = time.perf_counter()
    while done < total:
        user = rng.randrange(USERS)
        LOADED.append(user)
        size = min(1000, total - done)
        at = START + timedelta(seconds=rng.randrange(span))
        store.append_events(f"User-{user}-{done}", [
            make_event(rng, done + i, user, at + timedelta(seconds=i)) for i in range(size)])
        done += size
        if done % 100_000 == 0:
            log(f"loaded {done:,} events ({done / (time.perf_counter() - started):,.0f}/s)")


def baseline_sql(schema: str) -> dict[str, str]:
    cols = COLUMNS
    t = f'"{schema}".events'
    order = "ORDER BY transaction_id, global_position LIMIT %(limit)s"
    return {
        "json_eq": f"SELECT {cols} FROM {t} WHERE event_data @> %(doc)s::jsonb {order}",
        "user_id": f"SELECT {cols} FROM {t} WHERE metadata ->> 'user_id' = %(user)s {order}",
        "type_range": (f"SELECT {cols} FROM {t} WHERE event_type = %(type)s AND created_at >= %(lo)s "
                       f"AND created_at < %(hi)s {order}"),
        # Ranked, best first, as search_event_content answers.
        "fulltext": (f"SELECT {cols} FROM (SELECT *, ts_rank(v, q) AS rank FROM (SELECT *, "
                     "(to_tsvector('simple'::regconfig, coalesce(event_data, '{}'::jsonb)) || "
                     "to_tsvector('simple'::regconfig, metadata)) AS v, "
                     f"websearch_to_tsquery('simple'::regconfig, %(q)s) AS q FROM {t}) x "
                     "WHERE v @@ q) y ORDER BY rank DESC, transaction_id, global_position LIMIT %(limit)s"),
    }


def cases(rng: random.Random, limit: int) -> dict[str, tuple[EventSearchCriteria, dict[str, Any]]]:
    user = rng.choice(LOADED)
    email = f"user{user}.{rng.randrange(7)}@example.com"
    month = START + timedelta(days=30 * rng.randrange(11))
    words = " ".join(rng.sample(WORDS, 2))
    kind = rng.choice(TYPES)
    return {
        "json_eq": (EventSearchCriteria(where=f("data.email") == email, limit=limit),
                    {"doc": json.dumps({"email": email}), "limit": limit}),
        "user_id": (EventSearchCriteria(user_id=f"user-{user}", limit=limit),
                    {"user": f"user-{user}", "limit": limit}),
        "type_range": (EventSearchCriteria(event_types=[kind], from_timestamp=month,
                                           to_timestamp=month + timedelta(days=30), limit=limit),
                       {"type": kind, "lo": month, "hi": month + timedelta(days=30), "limit": limit}),
        "fulltext": (EventSearchCriteria(limit=limit), {"q": words, "limit": limit}),  # (text, not criteria)
    }


def time_queries(store: PostgreSQLEventStore, repeat: int, limit: int) -> dict[str, Any]:
    service = EventQueryService(store)
    sql = baseline_sql(store.db.schema)
    rng = random.Random(11)
    ours: dict[str, list[float]] = {k: [] for k in sql}
    base: dict[str, list[float]] = {k: [] for k in sql}
    counts: dict[str, list[int]] = {k: [] for k in sql}

    def run_ours(name: str, criteria: EventSearchCriteria, params: dict[str, Any]) -> int:
        if name == "fulltext":
            return len(service.search_event_content(params["q"], limit=limit))
        return len(service.query_events(criteria, plan=False, use_cache=False)[0].events)

    def run_sql(name: str, params: dict[str, Any]) -> None:
        with store.db.connection() as conn:
            rows = conn.execute(sql[name], params, prepare=False).fetchall()
            _events = [store.decode_row(r) for r in rows]

    for run in range(repeat):
        for name, (criteria, params) in cases(rng, limit).items():
            # Taking turns at going first: the second finds the same pages in memory.
            if run % 2:
                t0 = time.perf_counter()
                run_sql(name, params)
                t1 = time.perf_counter()
                got = run_ours(name, criteria, params)
                t2 = time.perf_counter()
                base[name].append((t1 - t0) * 1000)
                ours[name].append((t2 - t1) * 1000)
            else:
                t0 = time.perf_counter()
                got = run_ours(name, criteria, params)
                t1 = time.perf_counter()
                run_sql(name, params)
                t2 = time.perf_counter()
                ours[name].append((t1 - t0) * 1000)
                base[name].append((t2 - t1) * 1000)
            counts[name].append(got)
    out = {}
    for name in sql:
        o, b = ours[name], base[name]
        out[name] = {"ours_p50_ms": round(statistics.median(o), 2), "ours_p95_ms": round(_p95(o), 2),
                     "sql_p50_ms": round(statistics.median(b), 2), "sql_p95_ms": round(_p95(b), 2),
                     "rate_vs_sql": round(statistics.median(b) / statistics.median(o), 2),
                     "median_events": statistics.median(counts[name])}
    return out


def _p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.95) - 1)]


INDEXES = {
    "events_type_order_idx": "(event_type, transaction_id, global_position)",
    "events_user_order_idx": "((metadata ->> 'user_id'), transaction_id, global_position)",
    "events_correlation_order_idx": "((metadata ->> 'correlation_id'), transaction_id, global_position)",
    "events_data_gin_idx": "USING gin (event_data jsonb_path_ops)",
    "events_payload_order_idx": "(transaction_id, global_position) WHERE payload IS NOT NULL",
}


def append_costs(store: PostgreSQLEventStore, seconds: float) -> dict[str, Any]:
    """Batch and single append rates with: no query index, 0007 without GIN, 0007, 0007 + full text."""
    schema = store.db.schema
    rng = random.Random(5)
    at = datetime.now(UTC)

    def rates() -> tuple[float, float]:
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            store.append_events(f"bench-{rng.random()}", [make_event(rng, i, 1, at) for i in range(1000)])
            n += 1000
        batch = n / (time.perf_counter() - t0)
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            store.append_events(f"single-{rng.random()}", [make_event(rng, 0, 1, at)])
            n += 1
        return batch, n / (time.perf_counter() - t0)

    def execute(statement: str) -> None:
        with store.db.connection() as conn:
            conn.execute(statement)

    results = {}
    for name in INDEXES:
        execute(f'DROP INDEX IF EXISTS "{schema}".{name}')
    results["no query indexes"] = rates()
    for name, spec in INDEXES.items():
        if name != "events_data_gin_idx":
            execute(f'CREATE INDEX {name} ON "{schema}".events {spec}')
    results["0007 without GIN"] = rates()
    execute(f'CREATE INDEX events_data_gin_idx ON "{schema}".events {INDEXES["events_data_gin_idx"]}')
    results["0007 (all)"] = rates()
    with store.db.connection() as conn:
        conn.execute(store.db.sql("query", "create_fulltext_index", config="simple"))
    results["0007 + full text"] = rates()
    base_batch, base_single = results["no query indexes"]
    return {k: {"batch_events_per_s": round(b), "single_appends_per_s": round(s),
                "batch_vs_none": round(b / base_batch, 2), "single_vs_none": round(s / base_single, 2)}
            for k, (b, s) in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--append-seconds", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    load_before = os.getloadavg()[0]
    with scratch_database(url) as db_url:
        settings = load_settings(database_url=db_url, schema_name="bench")
        with PostgreSQLEventStore(settings=settings) as store:
            store.initialize_schema()
            log(f"loading {args.events:,} events over 12 months")
            load(store, args.events)
            with store.db.connection() as conn:
                conn.execute(store.db.sql("query", "create_fulltext_index", config="simple"))
                conn.execute("ANALYZE")
            log("timing queries")
            queries = time_queries(store, args.repeat, args.limit)
            log("timing appends with each set of indexes")
            appends = append_costs(store, args.append_seconds)
    report = {"events": args.events, "repeat": args.repeat, "limit": args.limit,
              "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
              "queries": queries, "appends": appends}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.events:,} events, {args.repeat} runs per query, load average "
          f"{report['load_average'][0]} -> {report['load_average'][1]}")
    print(f"{'query':<12} {'ours p50':>9} {'p95':>8} {'SQL p50':>9} {'p95':>8} {'rate':>6} {'events':>7}")
    for name, q in queries.items():
        print(f"{name:<12} {q['ours_p50_ms']:>9} {q['ours_p95_ms']:>8} {q['sql_p50_ms']:>9} "
              f"{q['sql_p95_ms']:>8} {q['rate_vs_sql']:>6} {q['median_events']:>7}")
    print(f"{'indexes':<20} {'batch ev/s':>11} {'vs none':>8} {'single/s':>9} {'vs none':>8}")
    for name, a in appends.items():
        print(f"{name:<20} {a['batch_events_per_s']:>11} {a['batch_vs_none']:>8} "
              f"{a['single_appends_per_s']:>9} {a['single_vs_none']:>8}")


if __name__ == "__main__":
    main()
