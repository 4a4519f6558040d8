"""Snapshot builds as jobs: a sweep planned in batches, built by real `dramatiq` workers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from evstore.core.snapshots.policy import SnapshotConfig, SnapshotStrategy, due_aggregates
from evstore.core.snapshots.store import SnapshotStore

from .domain import Account, deposits

ROOT = Path(__file__).resolve().parents[3]
WORKER_ENV = {
    "EVSTORE_JOB_SWEEP_INTERVAL": "0.5",
    "EVSTORE_JOB_MAX_RETRIES": "0",
    "dramatiq_worker_timeout": "250",
    # Workers build snapshots only of aggregate classes their operator configured.
    "EVSTORE_AGGREGATE_CLASSES": "tests.integration.snapshots.domain:Account",
}


@pytest.fixture
def job_env(database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in WORKER_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p))
    return dict(os.environ)


def test_snapshot_build_job_on_real_workers(job_env: dict[str, str], pstore: Any,
                                            tmp_path: Path) -> None:
    from evstore.workers.broker import make_broker
    from evstore.workers.engine import JobEngine
    from evstore.workers.pool import WorkerPool
    from evstore.workers.snapshot_jobs import start_snapshot_build

    for i in range(20):
        deposits(pstore, f"acct-{i:02d}", 12)
    for i in range(5):
        deposits(pstore, f"small-{i}", 3)
    config = SnapshotConfig(SnapshotStrategy.EVENT_COUNT, every_n_events=10, min_events=1)

    broker = make_broker(job_env["REDIS_URL"])
    engine = JobEngine(pstore, broker)
    job_id = start_snapshot_build(engine, Account, config, batch_size=6)
    detail = engine.detail(job_id)
    assert [b.items_total for b in detail.batches] == [6, 6, 6, 2]

    with WorkerPool(job_env["DATABASE_URL"], job_env["REDIS_URL"], processes=1, threads=2,
                    env=WORKER_ENV, log_path=tmp_path / "workers.log", cwd=ROOT):
        job = engine.wait(job_id, timeout=60)
    broker.client.close()
    assert job.status == "succeeded", (tmp_path / "workers.log").read_text()[-3000:]

    snaps = SnapshotStore(pstore)
    for i in range(20):
        snap = snaps.latest(Account, f"acct-{i:02d}")
        assert snap is not None and snap.aggregate_version == 12
    assert snaps.latest(Account, "small-0") is None
    assert list(due_aggregates(pstore, Account, config)) == []
    built = sum(b.details.get("built", 0) for b in engine.detail(job_id).batches)
    assert built == 20
