"""Archive throughput: evstore's archive jobs against a raw ``COPY ... TO`` of the same rows.

    .venv/bin/python -m benchmarks.archive [--events 100000] [--json]

Needs DATABASE_URL (default the local server) and REDIS_URL (default the
local Redis); works in a scratch database of its own. For each target — a
local folder and the S3 emulator (moto server from ``.venv-emulators``, started
here on a free port; see scripts/install-emulators.sh) — and for 1 and 2
worker processes (``dramatiq``, one thread each), it archives two whole months
of events (TIME_BASED: export, upload, read-back check, publish, then detach
and drop the partitions) as an ``archive`` job, and restores them for the next
round. The baseline is ``COPY (SELECT <every column> FROM events) TO STDOUT``
of the same rows, read by the client, in the same run.

Reported: events/s, MB/s of the segment lines before compression, and the zstd ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.scratch import DEFAULT_URL, scratch_database

ROOT = Path(__file__).resolve().parent.parent
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def populate(store: Any, events: int) -> None:
    from evstore.core import EventMetadata, EventRecord
    from evstore.core.store.partitions import add_months, month_of

    months = [add_months(month_of(datetime.now(UTC)), -k) for k in (2, 1)]
    per_stream = 50
    streams = events // per_stream
    for s in range(streams):
        m = months[s % 2]
        base = datetime(m.year, m.month, 2, tzinfo=UTC)
        batch = [EventRecord(
            aggregate_id=f"user-{s}", aggregate_type="User", event_type="ProfileUpdated",
            event_data={"n": i, "email": f"user{s}@example.com", "name": "Ada Lovelace",
                        "plan": "pro" if i % 3 else "free", "score": i * 1.5,
                        "tags": ["a", "b", "c"][: i % 4]},
            metadata=EventMetadata(user_id=f"user-{s}", correlation_id=str(uuid.uuid4()),
                                   source="bench"),
            created_at=base + timedelta(seconds=i))
            for i in range(per_stream)]
        store.append_events(f"user-{s}", batch)


def copy_baseline(store: Any) -> tuple[int, int, float]:
    """(rows, bytes, seconds) of COPY ... TO STDOUT of every event."""
    started = time.perf_counter()
    rows = size = 0
    with store.connection() as conn, conn.cursor() as cur:
        with cur.copy(f"COPY (SELECT * FROM {store.table('events')}) TO STDOUT") as copy:
            for chunk in copy:
                size += len(chunk)
                rows += bytes(chunk).count(b"\n")
    return rows, size, time.perf_counter() - started


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = Path(os.environ.get("EVSTORE_MOTO_SERVER") or ROOT / ".venv-emulators/bin/moto_server")
    if not binary.exists():
        raise SystemExit(f"moto server not found at {binary}: run scripts/install-emulators.sh")
    port = free_port()
    proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("moto server did not start") from None
            time.sleep(0.1)


def archive_round(store: Any, url: str, db_url: str, processes: int, namespace: str,
                  folder: Path) -> dict[str, Any]:
    from evstore.core.archive import ArchivalPolicy, get_run, list_segments, restore_archive
    from evstore.core.config_file import STORAGE_ENV
    from evstore.workers.archive_jobs import start_archive_job
    from evstore.workers.broker import make_broker
    from evstore.workers.engine import JobEngine
    from evstore.workers.pool import WorkerPool
    from evstore.workers.settings import load_job_settings

    settings = load_job_settings(namespace=namespace)
    engine = JobEngine(store, make_broker(REDIS, settings), settings)
    policy = ArchivalPolicy(name=f"bench-{uuid.uuid4().hex[:6]}", strategy="time_based",
                            retention_days=0, target_url=url, segment_size=10_000)
    pool = WorkerPool(db_url, REDIS, processes=processes, threads=1,
                      env={"EVSTORE_DRAMATIQ_NAMESPACE": namespace,
                           STORAGE_ENV: os.environ.get(STORAGE_ENV, "{}"),
                           "EVSTORE_ARCHIVE_TARGETS": os.environ.get("EVSTORE_ARCHIVE_TARGETS", "")},
                      log_path=folder / f"workers-{processes}.log").start()
    try:
        time.sleep(2.0)  # let the workers import and connect before the clock starts
        started = time.perf_counter()
        job_id = start_archive_job(engine, policy, created_by="benchmark")
        job = engine.wait(job_id, timeout=900)
        seconds = time.perf_counter() - started
    finally:
        pool.stop()
    run = get_run(store, str(job.params["run_id"]))
    if job.status != "succeeded" or run.status != "completed":
        raise SystemExit(f"archive job {job_id} ended {job.status}: {engine.detail(job_id)}")
    segments = list_segments(store, run.run_id)
    raw = sum(s.raw_bytes or 0 for s in segments)
    stored = sum(s.stored_bytes or 0 for s in segments)
    began = time.perf_counter()
    restored = restore_archive(store, run.manifest_url)
    restore_seconds = time.perf_counter() - began
    return {"events": run.event_count, "seconds": seconds, "raw_bytes": raw, "stored_bytes": stored,
            "events_per_s": run.event_count / seconds, "mb_per_s": raw / seconds / 1e6,
            "compression_ratio": raw / stored if stored else 0.0,
            "restore_events_per_s": restored.events_restored / restore_seconds}


def export_round(store: Any, url: str) -> dict[str, float]:
    """One archive run in this process, phase by phase: plan, export (select, check every
    checksum, compress, upload, read back), finalize (catalog, guard, drop), restore."""
    from evstore.core.archive import (
        ArchivalPolicy,
        export_segment,
        finalize_run,
        list_segments,
        plan_run,
        restore_archive,
    )

    policy = ArchivalPolicy(name=f"phase-{uuid.uuid4().hex[:6]}", strategy="time_based",
                            retention_days=0, target_url=url, segment_size=10_000)
    t0 = time.perf_counter()
    run, _ = plan_run(store, policy)
    t1 = time.perf_counter()
    for seg in list_segments(store, run.run_id):
        export_segment(store, run.run_id, seg.number)
    t2 = time.perf_counter()
    done = finalize_run(store, run.run_id)
    t3 = time.perf_counter()
    restored = restore_archive(store, done.manifest_url)
    t4 = time.perf_counter()
    n = run.event_count
    return {"plan_s": t1 - t0, "export_events_per_s": n / (t2 - t1),
            "finalize_s": t3 - t2, "run_events_per_s": n / (t3 - t0),
            "restore_events_per_s": restored.events_restored / (t4 - t3)}


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=3,
                        help="in-process phase rounds (medians are reported)")
    parser.add_argument("--phases-only", action="store_true",
                        help="skip the worker-job rounds (file and S3, 1 and 2 processes)")
    args = parser.parse_args()
    from evstore.core import PostgreSQLEventStore
    from evstore.core.config_file import STORAGE_ENV

    folder = Path(tempfile.mkdtemp(prefix="evstore-bench-archive-"))
    moto, port = start_moto(folder / "moto.log")
    os.environ[STORAGE_ENV] = json.dumps({"s3": {
        "key": "bench", "secret": "bench", "endpoint_url": f"http://127.0.0.1:{port}",
        "client_kwargs": {"region_name": "eu-west-1"}}})
    # Archive targets must be allowed by configuration (workers inherit this).
    os.environ["EVSTORE_ARCHIVE_TARGETS"] = (f"file://{folder}/archive,file://{folder}/phases,"
                                              "s3://evstore-bench")
    results: dict[str, Any] = {"events": args.events}
    try:
        with scratch_database(os.environ.get("DATABASE_URL", DEFAULT_URL)) as db_url, \
                PostgreSQLEventStore(db_url) as store:
            store.initialize_schema()
            populate(store, args.events)
            copies = [copy_baseline(store) for _ in range(max(1, args.repeat))]
            rows, size, _ = copies[0]
            seconds = median([c[2] for c in copies])
            results["copy_to"] = {"events": rows, "seconds": seconds, "events_per_s": rows / seconds,
                                  "mb_per_s": size / seconds / 1e6}
            # In this process, phase by phase, COPY measured between rounds (medians).
            phases: list[dict[str, float]] = []
            copy_rates: list[float] = []
            for _ in range(max(1, args.repeat)):
                phases.append(export_round(store, f"file://{folder}/phases"))
                r, _, s_ = copy_baseline(store)
                copy_rates.append(r / s_)
            results["phases_file"] = {k: median([p[k] for p in phases]) for k in phases[0]}
            results["phases_file"]["copy_to_events_per_s"] = median(copy_rates)
            results["phases_file"]["export_vs_copy_to"] = (
                results["phases_file"]["export_events_per_s"] / median(copy_rates))
            results["phases_file"]["run_vs_copy_to"] = (
                results["phases_file"]["run_events_per_s"] / median(copy_rates))
            from evstore.core.archive import ArchiveTarget

            s3 = ArchiveTarget("s3://evstore-bench")
            s3.fs.mkdir(s3.root)
            namespace = f"evstore-bench-{os.getpid()}"
            rounds = () if args.phases_only else (
                ("file", f"file://{folder}/archive"), ("s3", "s3://evstore-bench/a"))
            for name, url in rounds:
                for processes in (1, 2):
                    key = f"{name}_{processes}_worker{'s' if processes > 1 else ''}"
                    results[key] = archive_round(store, url, db_url, processes, namespace, folder)
                    results[key]["vs_copy_to"] = (results[key]["events_per_s"]
                                                  / results["copy_to"]["events_per_s"])
    finally:
        moto.terminate()
        moto.wait(10)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    copy = results["copy_to"]
    print(f"archive throughput, {args.events:,} events (two monthly partitions, 10,000 per segment)")
    print(f"  COPY ... TO STDOUT baseline: {copy['events_per_s']:>10,.0f} events/s "
          f"{copy['mb_per_s']:7.1f} MB/s")
    p = results["phases_file"]
    print(f"  in-process, file target (median of {args.repeat}): export "
          f"{p['export_events_per_s']:,.0f} events/s = {p['export_vs_copy_to']:.2f} of COPY TO "
          f"({p['copy_to_events_per_s']:,.0f}/s alongside); whole run {p['run_events_per_s']:,.0f} "
          f"events/s = {p['run_vs_copy_to']:.2f} (plan {p['plan_s']:.2f}s, finalize "
          f"{p['finalize_s']:.2f}s); restore {p['restore_events_per_s']:,.0f} events/s")
    for key, r in results.items():
        if isinstance(r, dict) and "compression_ratio" in r:
            print(f"  {key:<22} {r['events_per_s']:>10,.0f} events/s {r['mb_per_s']:7.1f} MB/s "
                  f"(lines), zstd x{r['compression_ratio']:.1f}, {r['vs_copy_to']:.2f} of COPY; "
                  f"restore {r['restore_events_per_s']:,.0f} events/s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
