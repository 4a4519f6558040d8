"""The access log's cost on reads, and the subject export, in one run.

    .venv/bin/python benchmarks/access_log.py [--streams 200] [--per-stream 50]
                                              [--export-events 10000] [--repeat 5] [--json]

In a scratch database ``evstore_bench_<pid>`` (on the server of DATABASE_URL,
default postgresql://postgres@127.0.0.1:5432/postgres; dropped at the end):

- ``--streams`` x ``--per-stream`` events of a type with declared personal
  fields (every event is personal: the worst case for the log), one subject
  per stream;
- ``read_stream``: every stream read once per pass; ``read_all``: the whole
  global order in pages of 1,000. Each pass is timed with the access log on
  (the default: an entry per call, buffered, written by the background
  thread every 200 ms) and with reads unobserved (the store without the
  feature), in turns; figures are the medians of ``--repeat`` passes and
  the ratio on/off (the aim: >= 0.90), and this process's CPU per event
  (all threads: the log's writer included), a figure a loaded machine
  disturbs less;
- ``export``: ``export_subject`` of a subject with ``--export-events`` events
  in PostgreSQL, and of one whose ``--export-events`` events were archived
  (a time-based policy to a local folder; the first export reads the
  segments cold, the second from the read-through cache).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evstore.core import EventMetadata, EventRecord, PostgreSQLEventStore
from evstore.core.config import load_settings
from evstore.core.privacy.declarations import PersonalData, declare
from evstore.core.privacy.export import export_subject
from evstore.core.store import hooks

from benchmarks.scratch import DEFAULT_URL, scratch_database
from benchmarks.timing import log

TYPE = "BenchProfileChanged"
declare(PersonalData(TYPE, ("data.email", "data.name", "data.address.street")))


def event(user: str, i: int, at: datetime | None = None) -> EventRecord:
    return EventRecord(
        user, "User", TYPE,
        {"email": f"{user}.{i}@example.com", "name": f"User {user}", "plan": "pro", "n": i,
         "address": {"street": f"{i} Main St", "city": "Springfield"}},
        metadata=EventMetadata(user_id=user, source="bench"),
        **({"created_at": at + timedelta(seconds=i)} if at else {}),
    )


def seed(store: PostgreSQLEventStore, streams: int, per_stream: int) -> None:
    for s in range(streams):
        store.append_events(f"user-{s}", [event(f"u{s}", i) for i in range(per_stream)])


def timed(fn: Any) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds: every thread, the log's writer included)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def measure(store: PostgreSQLEventStore, streams: int, repeat: int) -> dict[str, Any]:
    total = [0]

    def stream_pass() -> None:
        n = 0
        for s in range(streams):
            n += len(store.read_stream(f"user-{s}"))
        total[0] = n

    def all_pass() -> None:
        n, page = 0, store.read_all(limit=1000)
        n += len(page.events)
        while not page.at_end:
            page = store.read_all(after=page.checkpoint, limit=1000)
            n += len(page.events)
        total[0] = n

    def on(fn: Any) -> Any:
        def run() -> None:
            fn()
            store.flush_access_log()  # the pass pays for its own entries (the writer's work too)
        return run

    def off(fn: Any) -> Any:
        def run() -> None:
            with hooks.unobserved():
                fn()
        return run

    out: dict[str, Any] = {}
    for name, fn in (("read_stream", stream_pass), ("read_all", all_pass)):
        on_s, off_s = [], []
        fn()
        off(fn)()  # warm both
        for r in range(repeat):
            order = [(on_s, on(fn)), (off_s, off(fn))]
            for bucket, run in (order if r % 2 == 0 else order[::-1]):
                bucket.append(timed(run))
        events = total[0]
        on_rate = events / statistics.median(w for w, _ in on_s)
        off_rate = events / statistics.median(w for w, _ in off_s)
        on_cpu = statistics.median(c for _, c in on_s) / events * 1e6
        off_cpu = statistics.median(c for _, c in off_s) / events * 1e6
        out[name] = {"events_per_pass": events, "log_on_events_per_s": round(on_rate),
                     "log_off_events_per_s": round(off_rate), "ratio": round(on_rate / off_rate, 3),
                     "log_on_cpu_us_per_event": round(on_cpu, 1),
                     "log_off_cpu_us_per_event": round(off_cpu, 1),
                     "cpu_ratio": round(off_cpu / on_cpu, 3)}
        log(f"{name}: on {on_rate:,.0f}/s, off {off_rate:,.0f}/s, ratio {on_rate / off_rate:.3f}; "
            f"client CPU {on_cpu:.1f} vs {off_cpu:.1f} us/event (ratio {off_cpu / on_cpu:.3f})")
    store.flush_access_log()
    return out


def export_figures(store: PostgreSQLEventStore, events: int, folder: Path) -> dict[str, Any]:
    from evstore.core.archive import ArchivalPolicy, run_policy

    for start in range(0, events, 1000):
        store.append_events("export-live", [event("live-subject", i)
                                             for i in range(start, min(start + 1000, events))])
    now = datetime.now(UTC)
    old = datetime(now.year, now.month, 1, tzinfo=UTC) - timedelta(days=100)
    for start in range(0, events, 1000):
        store.append_events("export-old", [event("old-subject", i, old)
                                            for i in range(start, min(start + 1000, events))])
    os.environ.setdefault("EVSTORE_ARCHIVE_TARGETS", str(folder))
    os.environ.setdefault("EVSTORE_ARCHIVE_CACHE_DIR", str(folder / "cache"))
    run_policy(store, ArchivalPolicy(name="bench", strategy="time_based", retention_days=62,
                                     target_url=f"file://{folder}/archive"))
    out: dict[str, Any] = {}
    for label, subject, archive in (("live_pg", "live-subject", False),
                                    ("archived_cold", "old-subject", True),
                                    ("archived_warm", "old-subject", True)):
        cpu = time.process_time()
        result = export_subject(store, subject, folder / f"{label}.json", include_archive=archive)
        cpu = time.process_time() - cpu
        size = (folder / f"{label}.json").stat().st_size
        out[label] = {"seconds": round(result.seconds, 3), "client_cpu_seconds": round(cpu, 3),
                      "counts": result.counts, "bytes": size}
        log(f"export {label}: {result.seconds:.3f} s (client CPU {cpu:.3f} s), {result.counts}, "
            f"{size:,} bytes")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--per-stream", type=int, default=50)
    parser.add_argument("--export-events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    with scratch_database(url) as db_url, tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(database_url=db_url)
        with PostgreSQLEventStore(settings=settings) as store:
            store.initialize_schema()
            log(f"seeding {args.streams} x {args.per_stream} personal events")
            seed(store, args.streams, args.per_stream)
            with store.access_context(accessor="bench", purpose="benchmark"):
                reads = measure(store, args.streams, args.repeat)
            exports = export_figures(store, args.export_events, Path(tmp))
    report = {"reads": reads, "export": exports}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"{'read':<12} {'events':>8} {'log on/s':>10} {'log off/s':>10} {'ratio':>6} "
          f"{'CPU on us/ev':>13} {'CPU off us/ev':>14} {'CPU ratio':>9}")
    for name, r in reads.items():
        print(f"{name:<12} {r['events_per_pass']:>8,} {r['log_on_events_per_s']:>10,} "
              f"{r['log_off_events_per_s']:>10,} {r['ratio']:>6.3f} "
              f"{r['log_on_cpu_us_per_event']:>13.1f} {r['log_off_cpu_us_per_event']:>14.1f} "
              f"{r['cpu_ratio']:>9.3f}")
    for label, e in exports.items():
        print(f"export {label:<14} {e['seconds']:>7.3f} s  (client CPU {e['client_cpu_seconds']:.3f} s)"
              f"  {e['counts']}")


if __name__ == "__main__":
    main()
