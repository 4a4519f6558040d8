"""read_stream against the number of month partitions (issue 9, point 2).

For 1, 12 and 72 month partitions, 300 streams of 10 events each (each
stream within one month, streams spread over all months), it times:

- ``store SQL``: the store's stream statement (``stream_events``:
  partitions pruned to the stream's months), fetched and JSON-decoded
  exactly like the raw baselines: the like-for-like figure;
- ``read_stream``: the whole store read (that statement, plus EventRecords
  built and keyed checksums verified);
- ``raw flat``: the same rows selected with a plain keyset SELECT on an
  unpartitioned copy of the events (the baseline the issue names), fetched
  as the store fetches them (JSON as text) and decoded with json.loads;
- ``raw partitioned``: that SELECT on the partitioned table itself, the way
  read_stream worked before migration 0006 (every month's index probed).

Medians of single calls (microseconds) and ratios against the flat baseline,
measured in the same run. Usage: ``python benchmarks/stream_partitions.py
[--calls 3000] [--months 1 12 72]`` with DATABASE_URL pointing at a server
(a scratch database is created and dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from evstore.core.store.reads import COLUMNS

from benchmarks.scratch import DEFAULT_URL, scratch_database
from evstore import EventMetadata, EventRecord, PostgreSQLEventStore, load_settings

STREAMS = 300
EVENTS = 10


def build(url: str, schema: str, months: int) -> PostgreSQLEventStore:
    store = PostgreSQLEventStore(url, settings=load_settings(database_url=url, schema_name=schema))
    store.initialize_schema(months_ahead=0)
    now = datetime.now(UTC)
    store.create_partitions_ahead(months, now=now - timedelta(days=31 * (months - 1)))
    for s in range(STREAMS):
        at = now - timedelta(days=31 * (s % months))
        events = [EventRecord(str(s), "User", "UserUpdated",
                              {"i": i, "email": f"user{s}@example.com", "name": "x" * 60},
                              metadata=EventMetadata(user_id=str(s)), created_at=at,
                              event_id=uuid.uuid4()) for i in range(EVENTS)]
        store.append_events(f"User-{s}", events)
    with psycopg.connect(url, autocommit=True) as conn:
        q = f'"{schema}"'
        conn.execute(f"CREATE TABLE {q}.flat AS SELECT * FROM {q}.events")
        conn.execute(f"CREATE INDEX ON {q}.flat (stream_id, stream_position)")
        conn.execute(f"ANALYZE {q}.flat")
        conn.execute(f"ANALYZE {q}.events")
    return store


def timed(fn: object, calls: int) -> float:
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def measure(url: str, store: PostgreSQLEventStore, schema: str, calls: int) -> dict[str, float]:
    """Median microseconds per call of each way to read one stream."""
    q = f'"{schema}"'
    flat_sql = (f"SELECT {COLUMNS} FROM {q}.flat WHERE stream_id = %s "
                "AND stream_position >= %s ORDER BY stream_position")
    part_sql = flat_sql.replace(f"{q}.flat", f"{q}.events")
    ours_sql = store.db.sql("store", "read_stream", columns=COLUMNS)
    with psycopg.connect(url, autocommit=True) as conn:
        def fetch(sql: str, args: list[object]) -> None:
            for row in conn.execute(sql, args).fetchall():
                json.loads(row[10]), json.loads(row[12])

        figures: dict[str, float] = {}
        for _ in range(2):  # warm, then measure in turn
            figures = {
                "store SQL": timed(lambda i: fetch(ours_sql, [f"User-{i % STREAMS}", 1, 1000, False]),
                                   calls),
                "read_stream": timed(lambda i: store.read_stream(f"User-{i % STREAMS}"), calls),
                "raw flat": timed(lambda i: fetch(flat_sql, [f"User-{i % STREAMS}", 1]), calls),
                "raw partitioned": timed(lambda i: fetch(part_sql, [f"User-{i % STREAMS}", 1]),
                                         calls),
            }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--months", type=int, nargs="+", default=[1, 12, 72])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = []
    with scratch_database(os.environ.get("DATABASE_URL") or DEFAULT_URL) as url:
        for months in args.months:
            schema = f"m{months}"
            store = build(url, schema, months)
            figures = measure(url, store, schema, args.calls)
            store.close()
            base = figures["raw flat"]
            results.append({"months": months, **{k: round(v, 1) for k, v in figures.items()},
                            "store SQL / raw flat": round(figures["store SQL"] / base, 2),
                            "read_stream / raw flat": round(figures["read_stream"] / base, 2),
                            "raw partitioned / raw flat": round(figures["raw partitioned"] / base, 2)})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"read_stream of a {EVENTS}-event stream, median of {args.calls} calls (us), "
              f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"{'months':>6} {'store SQL':>10} {'read_stream':>12} {'raw flat':>9} "
              f"{'raw part.':>10} {'SQL/flat':>9} {'read/flat':>10} {'part./flat':>11}")
        for r in results:
            print(f"{r['months']:>6} {r['store SQL']:>10} {r['read_stream']:>12} {r['raw flat']:>9} "
                  f"{r['raw partitioned']:>10} {r['store SQL / raw flat']:>8}x "
                  f"{r['read_stream / raw flat']:>9}x {r['raw partitioned / raw flat']:>10}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
