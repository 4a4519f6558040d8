"""The snapshot guard of an archive job runs as guard batches on real `dramatiq`
worker processes (issue 13): real Redis, real PostgreSQL, a file target.

Before a month partition is dropped, every aggregate with events both in it and
after it gets a snapshot at or after its last archived event, built by the
job's guard batches in parallel; the finalize's inline guard then finds
nothing left to build. A failing guard batch stops the run before anything is
deleted, and requeueing it once the cause is fixed completes the run.
"""

from __future__ import annotations

import math
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from evstore.core.archive import ArchivalPolicy, get_run
from evstore.core.archive.catalog import stream_catalog
from evstore.core.jobs.model import JobBatch, JobDetail, StartedBatch
from evstore.core.snapshots.store import SnapshotStore
from evstore.workers.archive_jobs import ArchiveJobKind, guard_report, start_archive_job
from evstore.workers.broker import make_broker
from evstore.workers.engine import JobEngine
from evstore.workers.kinds import BatchContext
from evstore.workers.pool import WorkerPool, wait_for
from evstore.workers.settings import load_job_settings

from evstore import EventMetadata, EventRecord, PostgreSQLEventStore
from evstore.workload import UserAccount

from .guard_classes import FAIL_ENV, FlakyAccount
from .helpers import count, month_start, partition_names

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[3]
NOW = month_start(0).replace(day=20)
OLD, LIVE = month_start(3), month_start(0)
ACCOUNT = "evstore.workload:UserAccount"
FLAKY = "tests.integration.archive.guard_classes:FlakyAccount"


def _events(aggregate_id: str, month: Any, n: int, first: int) -> list[EventRecord]:
    base = month + timedelta(days=1, hours=12)
    return [
        EventRecord(
            aggregate_id=aggregate_id, aggregate_type="User",
            event_type="UserRegistered" if first + i == 1 else "UserLoggedIn",
            event_data=({"email": f"{aggregate_id}@example.com"} if first + i == 1
                        else {"ip": "10.0.0.1", "method": "password", "success": i % 2 == 0}),
            metadata=EventMetadata(user_id=aggregate_id, source="test"),
            created_at=base + timedelta(minutes=first + i),
        )
        for i in range(n)
    ]


def seed(store: PostgreSQLEventStore, spanning: int = 60) -> list[str]:
    """``spanning`` users with 3 events in an old month and 2 in this one (the
    affected ones), plus users only in the old month and only in this one."""
    ids = [f"acct-{i:03d}" for i in range(spanning)]
    for aggregate_id in ids:
        store.append_events(aggregate_id, _events(aggregate_id, OLD, 3, 1))
        store.append_events(aggregate_id, _events(aggregate_id, LIVE, 2, 4))
    for i in range(8):
        store.append_events(f"gone-{i}", _events(f"gone-{i}", OLD, 3, 1))
        store.append_events(f"new-{i}", _events(f"new-{i}", LIVE, 3, 1))
    return ids


def policy(tmp_path: Path) -> ArchivalPolicy:
    return ArchivalPolicy(name="guarded", strategy="time_based", retention_days=62,
                          target_url=f"file://{tmp_path}/archive", segment_size=40)


def workers(database_url: str, namespace: str, tmp_path: Path, name: str,
            **env: str) -> WorkerPool:
    return WorkerPool(
        database_url, REDIS_URL, processes=2, threads=2,
        env={"EVSTORE_DRAMATIQ_NAMESPACE": namespace, "EVSTORE_JOB_SWEEP_INTERVAL": "1",
             "EVSTORE_JOB_MAX_RETRIES": "1", "EVSTORE_JOB_MIN_BACKOFF_MS": "100",
             "EVSTORE_JOB_MAX_BACKOFF_MS": "500", "EVSTORE_BROKER_HEARTBEAT_TIMEOUT_MS": "3000",
             **env},
        log_path=tmp_path / f"{name}.log",
    )


def job_engine(store: PostgreSQLEventStore, namespace: str) -> JobEngine:
    """The producer's engine, on this test's Dramatiq namespace."""
    settings = load_job_settings(namespace=namespace)
    return JobEngine(store, make_broker(REDIS_URL, settings), settings)


@pytest.fixture
def classes_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Producer and workers import the guard's classes from this checkout."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p))
    monkeypatch.delenv(FAIL_ENV, raising=False)


def guard_batches(detail: JobDetail) -> list[JobBatch]:
    return [b for b in detail.batches if isinstance(b.params.get("guard"), dict)]


def snapshot_rows(store: PostgreSQLEventStore) -> int:
    return count(store, "event_snapshots")


def affected_after(store: PostgreSQLEventStore, ids: list[str]) -> dict[str, int]:
    """After the run: the aggregates with archived and live events, and their last
    archived position (from the catalog)."""
    found = {}
    for aggregate_id in ids:
        entries = stream_catalog(store, aggregate_id)
        if entries and store.get_stream_version(aggregate_id) > entries[-1].last_position:
            found[aggregate_id] = entries[-1].last_position
    return found


def rerun_in_process(store: PostgreSQLEventStore, engine: JobEngine, job_id: int,
                     batch: JobBatch) -> dict[str, Any]:
    """Run one guard batch of the job again, here (its kind's own code, real database)."""
    job = engine.get(job_id)
    started = StartedBatch(job_id, batch.number, batch.attempts + 1, job.kind, job.params,
                           batch.params, batch.label, batch.items_total)
    import structlog

    with store.connection() as conn:
        ctx = BatchContext.of(started, store=store, connection=conn, worker="test",
                              log=structlog.get_logger("test"))
        outcome = ArchiveJobKind().run(ctx)
    return outcome.details["guard"]


def test_guard_batches_on_workers_snapshot_every_affected_aggregate(
    database_url: str, tmp_path: Path, namespace: str, classes_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVSTORE_AGGREGATE_CLASSES", ACCOUNT)
    with PostgreSQLEventStore(database_url) as store:
        ids = seed(store)
        events_before = count(store)
        engine = job_engine(store, namespace)
        assert snapshot_rows(store) == 0

        # When the archive runs as a job, 7 aggregates per guard batch
        job_id = start_archive_job(engine, policy(tmp_path), created_by="test", now=NOW,
                                   guard_batch_size=7)
        planned = engine.detail(job_id)
        guards = guard_batches(planned)
        # every spanning user, and only those, is in exactly one guard batch, after the segments
        in_batches = [a for b in guards for a, _ in b.params["guard"]["aggregates"]]
        assert sorted(in_batches) == ids
        assert len(guards) == math.ceil(len(ids) / 7) and len(guards) >= 5
        segments = [b for b in planned.batches if b not in guards]
        assert segments and max(b.number for b in segments) < min(b.number for b in guards)
        assert planned.job.params["guard"]["affected"] == len(ids)
        assert all(p == 3 for b in guards for _, p in b.params["guard"]["aggregates"])

        with workers(database_url, namespace, tmp_path, "guard"):
            job = engine.wait(job_id, timeout=120)

        # Then the job succeeded, its guard batches on the workers built every snapshot
        detail = engine.detail(job_id)
        assert job.status == "succeeded", detail
        guards = guard_batches(detail)
        assert all(b.status == "succeeded" and b.worker for b in guards)
        report = guard_report(detail)
        assert report is not None
        assert (report.affected, report.built, report.already) == (len(ids), len(ids), 0)
        # finalize's inline check built nothing: every snapshot row is one a guard batch built
        assert snapshot_rows(store) == report.built

        # and the month was archived and dropped
        run = get_run(store, str(job.params["run_id"]))
        assert run.status == "completed" and run.dropped_partitions
        assert count(store) == events_before - len(ids) * 3 - 8 * 3
        affected = affected_after(store, ids)
        assert sorted(affected) == ids
        snapshots = SnapshotStore(store)
        for aggregate_id, archived_to in affected.items():
            latest = snapshots.latest(UserAccount, aggregate_id)
            assert latest is not None and latest.aggregate_version >= archived_to, aggregate_id

        # Idempotence: a guard batch run again builds nothing
        rows = snapshot_rows(store)
        for batch in guards[:3]:
            again = rerun_in_process(store, engine, job_id, batch)
            assert again == {"affected": batch.items_total, "built": 0,
                             "already": batch.items_total}
        assert snapshot_rows(store) == rows


def test_a_failing_guard_batch_deletes_nothing_and_requeue_completes(
    database_url: str, tmp_path: Path, namespace: str, classes_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVSTORE_AGGREGATE_CLASSES", FLAKY)
    with PostgreSQLEventStore(database_url) as store:
        ids = seed(store, spanning=30)
        events_before = count(store)
        partitions_before = partition_names(store)
        engine = job_engine(store, namespace)
        job_id = start_archive_job(engine, policy(tmp_path), created_by="test", now=NOW,
                                   guard_batch_size=6)
        run_id = str(engine.get(job_id).params["run_id"])
        guards = guard_batches(engine.detail(job_id))
        # the fourth aggregate of the second guard batch cannot be rebuilt on these workers
        failing_batch = guards[1]
        bad = failing_batch.params["guard"]["aggregates"][3][0]
        others = [b.number for b in engine.detail(job_id).batches if b.number != failing_batch.number]

        def settled() -> bool:
            detail = engine.detail(job_id)
            done = all(b.status == "succeeded" for b in detail.batches if b.number in others)
            errors = [e for e in detail.errors if e.number == failing_batch.number]
            # failed for good, or failed on its retry too (see the engine's open
            # 'retrying' bug named in tests/integration/ops/test_logs.py)
            return done and (any(e.final for e in errors) or len(errors) >= 2)

        with workers(database_url, namespace, tmp_path, "broken", **{FAIL_ENV: bad}):
            wait_for(settled, 120, what="every batch done but the failing guard batch")

        # Then nothing was deleted: every event is still in PostgreSQL, every partition there
        detail = engine.detail(job_id)
        assert detail.job.status != "succeeded"
        errors = [e for e in detail.errors if e.number == failing_batch.number]
        assert errors and all(e.item == f"aggregate {bad}" for e in errors)
        assert count(store) == events_before
        assert partition_names(store) == partitions_before
        assert get_run(store, run_id).status != "completed"
        # the failed attempts built the aggregates before the bad one (each commits on its own)
        snapshots = SnapshotStore(store)
        chunk = [a for a, _ in failing_batch.params["guard"]["aggregates"]]
        assert all(snapshots.latest(FlakyAccount, a) is not None for a in chunk[:3])
        assert snapshots.latest(FlakyAccount, bad) is None

        # When the cause is fixed (workers without it) and the job is requeued
        with workers(database_url, namespace, tmp_path, "fixed"):
            sent = engine.requeue(job_id) + engine.requeue(job_id, stale=True)
            assert failing_batch.number in sent
            job = engine.wait(job_id, timeout=120)

        # Then the run completes, and the guard batch built only what was missing
        detail = engine.detail(job_id)
        assert job.status == "succeeded", detail
        [rerun] = [b for b in detail.batches if b.number == failing_batch.number]
        assert rerun.details["guard"] == {"affected": len(chunk), "built": len(chunk) - 3,
                                          "already": 3}
        report = guard_report(detail)
        assert report is not None and report.affected == len(ids) == report.built + report.already
        assert snapshot_rows(store) == len(ids)  # finalize's inline check built nothing
        run = get_run(store, run_id)
        assert run.status == "completed" and run.dropped_partitions
        assert count(store) == events_before - len(ids) * 3 - 8 * 3
        for aggregate_id, archived_to in affected_after(store, ids).items():
            latest = snapshots.latest(FlakyAccount, aggregate_id)
            assert latest is not None and latest.aggregate_version >= archived_to, aggregate_id


def test_evstore_archive_run_on_workers_reports_the_guard(
    database_url: str, tmp_path: Path, namespace: str, classes_env: None,
) -> None:
    """The operator's command: the run's line, then what the guard batches did."""
    import subprocess
    import sys

    config = tmp_path / "evstore.toml"
    config.write_text(f'[archive.policies.guarded]\nstrategy = "time_based"\nretention_days = 45\n'
                      f'target_url = "file://{tmp_path}/archive"\nsegment_size = 40\n')
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
           "EVSTORE_CONFIG": str(config), "EVSTORE_DRAMATIQ_NAMESPACE": namespace,
           "EVSTORE_AGGREGATE_CLASSES": ACCOUNT}
    with PostgreSQLEventStore(database_url) as store:
        seed(store, spanning=12)
        with workers(database_url, namespace, tmp_path, "cli", EVSTORE_AGGREGATE_CLASSES=ACCOUNT):
            proc = subprocess.run([sys.executable, "-m", "evstore.cli", "archive", "run", "guarded",
                                   "--on-workers"], env=env, capture_output=True, text=True,
                                  timeout=180)
        assert proc.returncode == 0, proc.stderr
        assert "completed" in proc.stdout
        assert ("snapshot guard: 12 aggregate(s) affected, 12 snapshot(s) built, 0 had one"
                in proc.stdout), proc.stdout
        assert snapshot_rows(store) == 12
