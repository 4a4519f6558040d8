"""Archive runs as jobs: segments uploaded by real `dramatiq` worker processes.

Real Redis, real PostgreSQL, real worker subprocesses, the S3 emulator.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from evstore.core.archive import (
    ArchivalPolicy,
    ArchiveTarget,
    get_run,
    list_segments,
    restore_archive,
)
from evstore.core.errors import InvalidJobError
from evstore.workers.archive_jobs import start_archive_job
from evstore.workers.broker import make_broker
from evstore.workers.engine import JobEngine
from evstore.workers.pool import WorkerPool, wait_for
from evstore.workers.settings import load_job_settings

from evstore import PostgreSQLEventStore

from .conftest import Emulators, target_url_for
from .helpers import populate, raw_rows

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")




def pool(database_url: str, namespace: str, tmp_path: Path, name: str) -> WorkerPool:
    from evstore.core.config_file import STORAGE_ENV

    return WorkerPool(
        database_url, REDIS_URL, processes=2, threads=2,
        env={"EVSTORE_DRAMATIQ_NAMESPACE": namespace, "EVSTORE_JOB_SWEEP_INTERVAL": "1",
             "EVSTORE_JOB_MIN_BACKOFF_MS": "200", "EVSTORE_JOB_MAX_BACKOFF_MS": "1000",
             "EVSTORE_BROKER_HEARTBEAT_TIMEOUT_MS": "3000",
             STORAGE_ENV: os.environ.get(STORAGE_ENV, "{}")},
        log_path=tmp_path / f"{name}.log",
    )


@pytest.mark.slow
def test_archive_job_on_workers_survives_a_sigkilled_pool(
    database_url: str, emulators: Emulators, tmp_path: Path, namespace: str
) -> None:
    url = target_url_for("s3", emulators, tmp_path)
    settings = load_job_settings(namespace=namespace, min_backoff_ms=200, max_backoff_ms=1000)
    with PostgreSQLEventStore(database_url) as store:
        # Given 1,200 events over 24 segments
        populate(store, [2, 1], streams=6, per_stream=100)
        original = raw_rows(store)
        policy = ArchivalPolicy(name="jobs", strategy="count_based", keep_events=0,
                                target_url=url, segment_size=50)
        engine = JobEngine(store, make_broker(REDIS_URL, settings), settings)

        # When the job runs on a pool that is SIGKILLed once a few segments are verified
        job_id = start_archive_job(engine, policy, created_by="test")
        run_id = str(engine.get(job_id).params["run_id"])
        # (a second job for the same run is refused while the first one runs)
        with pytest.raises(InvalidJobError, match=f"still being archived by job {job_id}"):
            start_archive_job(engine, policy)

        def verified() -> int:
            return sum(s.status == "verified" for s in list_segments(store, run_id))

        first = pool(database_url, namespace, tmp_path, "first").start()
        try:
            wait_for(lambda: verified() >= 3, 60, what="three verified segments")
        finally:
            first.kill()
            first.stop()  # closes its log
        # nothing was deleted while segments were missing
        assert get_run(store, run_id).status == "planned"
        assert len(raw_rows(store)) == len(original)

        # and a second pool picks the job up
        with pool(database_url, namespace, tmp_path, "second"):
            job = engine.wait(job_id, timeout=90)

        # Then the job succeeded, each segment once, and the run completed
        assert job.status == "succeeded", engine.detail(job_id)
        run = get_run(store, run_id)
        assert run.status == "completed" and run.segment_count == 24
        assert run.job_id == str(job_id)
        assert run.deleted_events == 1200
        assert raw_rows(store) == []
        target = ArchiveTarget(url)  # no temporary object of a killed upload is left
        assert not [p for p in target.fs.find(target.root) if ".tmp-" in p]

        # and the archive restores to the original rows, byte for byte
        restore_archive(store, run.manifest_url)
        assert raw_rows(store) == original


def test_a_worker_refuses_a_run_row_pointing_at_a_target_not_allowed(
    database_url: str, tmp_path: Path, namespace: str
) -> None:
    # Outside the tests' allowed folders (EVSTORE_ARCHIVE_TARGETS, see conftest)
    evil = Path("/tmp") / f"evstore-not-allowed-{uuid.uuid4().hex[:8]}"
    settings = load_job_settings(namespace=namespace, min_backoff_ms=200, max_backoff_ms=1000)
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [1], streams=1, per_stream=4)
        original = raw_rows(store)
        policy = ArchivalPolicy(name="rows", strategy="count_based", keep_events=0,
                                target_url=f"file://{tmp_path}/archive", segment_size=2)
        engine = JobEngine(store, make_broker(REDIS_URL, settings), settings)
        job_id = start_archive_job(engine, policy, created_by="test")

        # When someone with write access to the database rewrites the run's target
        # before the workers pick the job up
        with store.connection() as conn:
            conn.execute(f"UPDATE {store.table('archive_runs')} SET target_url = %s",
                         [f"file://{evil}"])

        def refused() -> bool:
            return any("not an allowed archive target" in e.error
                       for e in engine.detail(job_id).errors)

        with pool(database_url, namespace, tmp_path, "refuse"):
            wait_for(refused, 60, what="a batch refused on its target")

        # Then the worker's batches fail naming the reason, and nothing went there
        try:
            assert not evil.exists()
        finally:
            if evil.exists():
                import shutil

                shutil.rmtree(evil)
        assert raw_rows(store) == original
