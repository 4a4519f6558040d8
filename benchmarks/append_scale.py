"""Append latency as the store grows: single-event appends at 0, 1M, ... stored events.

    python -m benchmarks.append_scale --levels 1000000,10000000 [--appends 1000]

In a scratch database (benchmarks/scratch.py) it times ``--appends``
single-event appends (half to new streams, half to existing ones with
expected version ANY) from one process, then fills the store up to the next
level server-side (INSERT ... SELECT generate_series, 250-byte events in
streams of 10, in the current month's partition, in chunks of 500,000), and
times again. After each append a raw one-row INSERT + commit into a small
table is timed too (the baseline: what the loaded machine gives a write now);
``new/raw`` is the ratio of the medians. The filler rows carry a placeholder checksum: do not run
``verify`` on this database (it is dropped at the end anyway). The machine is
shared: compare the levels of one run, not runs.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

FILL = """
INSERT INTO events.events (event_id, aggregate_id, aggregate_type, event_type, aggregate_version,
                           stream_id, stream_position, event_data, metadata, created_at, checksum,
                           original_size, stored_size)
SELECT gen_random_uuid(), (i / 10)::text, 'Filler', 'Filled', i %% 10 + 1, 'Filler-' || (i / 10),
       i %% 10 + 1, jsonb_build_object('n', i, 'pad', repeat('x', 200)), '{}'::jsonb, now(),
       'filler', 250, 250
  FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) AS i
"""
STREAMS = """
INSERT INTO events.streams (stream_id, aggregate_id, aggregate_type, version, first_event_at, last_event_at)
SELECT 'Filler-' || s, s::text, 'Filler', 10, now(), now()
  FROM generate_series(%(lo)s::bigint / 10, %(hi)s::bigint / 10 - 1) AS s
"""
CHUNK = 500_000


BASELINE_DDL = "CREATE TABLE IF NOT EXISTS public.scale_baseline (id bigserial PRIMARY KEY, body jsonb)"
BASELINE = "INSERT INTO public.scale_baseline (body) VALUES (%s::jsonb)"


def time_appends(store: Any, n: int, filled: int, label: str, raw: Any) -> dict[str, Any]:
    """n/2 appends creating new streams, then n/2 to existing streams (expected version ANY):
    random filler streams, or at level 0 the streams just created."""
    from evstore import ANY, EventRecord

    rnd = random.Random(7)
    new: list[float] = []
    old: list[float] = []
    base: list[float] = []

    def baseline() -> None:  # a raw one-row INSERT + commit, interleaved: the machine's load now
        start = time.perf_counter()
        raw.execute(BASELINE, ['{"pad": "%s"}' % ("x" * 200)])
        base.append(time.perf_counter() - start)
    half = n // 2
    for i in range(half):
        stream = f"Probe-{label}-{i}"
        event = EventRecord(stream, "Probe", "Probed", {"i": i, "pad": "x" * 200}, aggregate_version=1)
        start = time.perf_counter()
        store.append_events(stream, [event])
        new.append(time.perf_counter() - start)
        baseline()
    for i in range(half):
        if filled >= 10:
            stream, agg, kind = f"Filler-{rnd.randrange(filled // 10)}", None, "Filler"
        else:
            stream, agg, kind = f"Probe-{label}-{rnd.randrange(half)}", None, "Probe"
        agg = stream.split("-", 1)[1] if kind == "Filler" else stream
        event = EventRecord(agg, kind, "Probed", {"i": i, "pad": "x" * 200})
        start = time.perf_counter()
        store.append_events(stream, [event], ANY)
        old.append(time.perf_counter() - start)
        baseline()

    def q(values: list[float], at: float) -> float:
        ordered = sorted(values)
        return 1000 * ordered[min(len(ordered) - 1, int(at * len(ordered)))]

    return {"stored": filled, "appends": n, "new_p50_ms": q(new, 0.5), "new_p99_ms": q(new, 0.99),
            "existing_p50_ms": q(old, 0.5), "existing_p99_ms": q(old, 0.99),
            "baseline_p50_ms": q(base, 0.5), "new_over_baseline": q(new, 0.5) / q(base, 0.5)}


def fill(url: str, lo: int, hi: int) -> float:
    import psycopg

    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for a in range(lo, hi, CHUNK):
            b = min(a + CHUNK, hi)
            with conn.transaction():
                conn.execute(FILL, {"lo": a, "hi": b})
                conn.execute(STREAMS, {"lo": a, "hi": b})
            print(f"  filled {b:,}", flush=True)
        conn.execute("ANALYZE events.events")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="1000000,10000000")
    ap.add_argument("--appends", type=int, default=1000)
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    import os

    from benchmarks.scratch import DEFAULT_URL, scratch_database
    from evstore import PostgreSQLEventStore

    rows = []
    with scratch_database(os.environ.get("DATABASE_URL", DEFAULT_URL)) as url:
        with PostgreSQLEventStore(url) as store:
            store.initialize_schema()
            filled = 0
            import psycopg

            raw = psycopg.connect(url, autocommit=True)
            raw.execute(BASELINE_DDL)
            rows.append(time_appends(store, args.appends, 0, "0", raw))
            print(rows[-1], flush=True)
            for level in levels:
                seconds = fill(url, filled, level)
                filled = level
                with store.connection() as conn:
                    size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))"
                                        ).fetchone()[0]
                rows.append({**time_appends(store, args.appends, filled, str(level), raw),
                             "fill_seconds": round(seconds), "database": size})
                print(rows[-1], flush=True)
    print(f"\n{'stored events':>14} {'new p50':>8} {'new p99':>8} {'old p50':>8} {'old p99':>8} "
          f"{'raw p50':>8} {'new/raw':>8}  (ms; raw: a one-row INSERT interleaved)")
    for r in rows:
        print(f"{r['stored']:>14,} {r['new_p50_ms']:8.2f} {r['new_p99_ms']:8.2f} "
              f"{r['existing_p50_ms']:8.2f} {r['existing_p99_ms']:8.2f} {r['baseline_p50_ms']:8.2f} "
              f"{r['new_over_baseline']:8.2f}")


if __name__ == "__main__":
    main()
