"""Replay throughput on real workers against read_all of the same events, in one run.

    .venv/bin/python benchmarks/replay.py [--events N] [--streams S] [--batch-size B]
                                          [--threads T] [--repeat R] [--json]

Loads N events into a scratch database ``evstore_bench_<pid>`` (on the server
of DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres; dropped
at the end), then measures, R times each, in turns:

- ``read_all``: one process pages through every event with
  ``iter_all`` (decoding and checksum-verifying each, as replay does);
- ``replay x1``: a replay job of the same events to the no-op handler on one
  `dramatiq` worker process of T threads;
- ``replay x2``: the same on two worker processes.

A replay's time runs from ``start()`` (planning, inserting the job, sending
the messages) until the job is seen finished, polled every 20 ms; the workers
are started and polling Redis before the clock starts. Redis is REDIS_URL, or
an embedded one. Figures are medians of the runs, in events per second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evstore.core import EventRecord, PostgreSQLEventStore, load_settings
from evstore.workers.broker import make_broker, redis_url
from evstore.workers.pool import WorkerPool, wait_for
from evstore.workers.replay import EventReplayService, ReplayConfig

from benchmarks.scratch import DEFAULT_URL, scratch_database


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=100_000, help="events to load (default 100,000)")
    p.add_argument("--streams", type=int, default=4_000, help="streams they belong to (default 4,000)")
    p.add_argument("--batch-size", type=int, default=5_000, help="events per replay batch (default 5,000)")
    p.add_argument("--threads", type=int, default=2, help="threads per worker process (default 2)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each; medians reported (default 3)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p.parse_args(argv)


def load(store: PostgreSQLEventStore, events: int, streams: int) -> int:
    """Identity-service-like events, one append per stream, four writers."""
    per_stream = max(events // streams, 1)

    def append(s: int) -> int:
        batch = [EventRecord(str(s), "User", ("UserRegistered", "UserLoggedIn", "EmailChanged")[min(i, 2)],
                             {"email": f"user{s}@example.com", "n": i, "agent": "Mozilla/5.0"},
                             aggregate_version=i + 1) for i in range(per_stream)]
        store.append_events(f"User-{s}", batch)
        return len(batch)

    with ThreadPoolExecutor(4) as pool:
        return sum(pool.map(append, range(streams)))


def time_read_all(store: PostgreSQLEventStore, page: int) -> tuple[int, float]:
    start = time.perf_counter()
    n = sum(1 for _ in store.iter_all(batch_size=page))
    return n, time.perf_counter() - start


def time_replay(service: EventReplayService, batch_size: int) -> tuple[int, float, int]:
    start = time.perf_counter()
    job_id = service.start(ReplayConfig(handler_names=["noop"], batch_size=batch_size))
    job = service.engine.wait(job_id, timeout=3600, poll=0.02)
    seconds = time.perf_counter() - start
    if job.status != "succeeded":
        raise RuntimeError(f"replay job {job_id} ended {job.status}")
    return job.items_done, seconds, job.batches_total


def _heartbeats(broker: Any) -> int:
    return int(broker.client.zcard(f"{broker.namespace}:__heartbeats__"))


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = os.environ.get("DATABASE_URL") or DEFAULT_URL
    os.environ["EVSTORE_DRAMATIQ_NAMESPACE"] = f"evstore-bench-{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("EVSTORE_LOG_LEVEL", "WARNING")
    from evstore.workers.logs import configure_logging

    configure_logging()
    results: dict[str, list[float]] = {"read_all": [], "replay x1": [], "replay x2": []}
    with scratch_database(base) as url, PostgreSQLEventStore(url) as store, \
            redis_url(load_settings(), announce=log) as r_url:
        store.initialize_schema()
        log(f"loading {args.events:,} events in {args.streams:,} streams ...")
        total = load(store, args.events, args.streams)
        broker = make_broker(r_url)
        service = EventReplayService(store, broker)
        logs = Path(tempfile.mkdtemp(prefix="evstore-bench-workers-"))
        pools = {n: WorkerPool(url, r_url, processes=n, threads=args.threads,
                               log_path=logs / f"workers-{n}.log") for n in (1, 2)}
        batches = 0
        try:
            for r in range(args.repeat):
                n, seconds = time_read_all(store, store.settings.batch_size)
                assert n == total, (n, total)
                results["read_all"].append(n / seconds)
                log(f"run {r + 1}: read_all {n / seconds:,.0f} events/s")
                for processes, pool in pools.items():
                    pool.start()
                    wait_for(lambda n=processes: _heartbeats(broker) >= n, timeout=60,
                             what="the workers polling Redis")
                    n, seconds, batches = time_replay(service, args.batch_size)
                    assert n == total, (n, total)
                    pool.stop()
                    broker.client.delete(f"{broker.namespace}:__heartbeats__")
                    results[f"replay x{processes}"].append(n / seconds)
                    log(f"run {r + 1}: replay on {processes} process(es) {n / seconds:,.0f} events/s")
        finally:
            for pool in pools.values():
                pool.stop()
            broker.client.close()
    medians = {k: statistics.median(v) for k, v in results.items()}
    return {
        "events": total, "streams": args.streams, "batch_size": args.batch_size,
        "batches": batches, "threads_per_process": args.threads, "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "events_per_s": {k: round(v, 1) for k, v in medians.items()},
        "runs_events_per_s": {k: [round(x, 1) for x in v] for k, v in results.items()},
        "ratios": {
            "replay x1 / read_all": round(medians["replay x1"] / medians["read_all"], 3),
            "replay x2 / read_all": round(medians["replay x2"] / medians["read_all"], 3),
            "replay x2 / replay x1": round(medians["replay x2"] / medians["replay x1"], 3),
        },
    }


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"\nreplay to a no-op handler vs read_all: {report['events']:,} events, "
          f"{report['batches']} batches of <= {report['batch_size']:,}, "
          f"{report['threads_per_process']} threads per worker process, {report['cpus']} CPUs, "
          f"median of {report['repeat']} runs")
    for label, rate in report["events_per_s"].items():
        print(f"  {label:<12} {rate:>12,.0f} events/s")
    for label, ratio in report["ratios"].items():
        print(f"  {label:<24} {ratio:.2f}")


if __name__ == "__main__":
    main()
