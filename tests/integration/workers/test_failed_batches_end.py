"""Failing batches always reach their end: no batch stranded 'retrying'.

A replay whose handler fails on every event, with many batches, a 100 ms
retry backoff and one retry, on real ``dramatiq`` worker processes (the real
``BatchFailures`` middleware, real PostgreSQL and Redis): every batch must end
'failed' and so must the job. Before the fix, an attempt's leftovers (the
failing replay's server-side cursor, kept alive by the exception's frames)
were finalised by the garbage collector while their connection, back in the
pool, served another transaction: a stray ``CLOSE`` aborted that transaction,
so ``mark_failed`` hit InFailedSqlTransaction, or a retry's start was silently
rolled back at COMMIT and the retry dropped itself as "superseded", leaving the
batch 'retrying' with no message, and the job never ended.
"""

from __future__ import annotations

from evstore.core.errors import JobError
from evstore.workers.replay import ReplayConfig

from .conftest import seed


def _poison(_stream: int, i: int) -> dict[str, object]:
    return {"poison": True, "n": i}


def test_every_failing_batch_ends_failed_and_the_job_ends(service, jobs_store, start_workers) -> None:
    # Given 60 streams of 4 events, each of which the 'fragile' handler refuses
    seed(jobs_store, 60, 4, data=_poison)
    start_workers(processes=2, threads=4)
    engine = service.engine
    # When a replay runs them in 60 batches, each tried twice 100 ms apart
    job_id = service.start(ReplayConfig(handler_names=["fragile"], batch_size=4))
    assert engine.get(job_id).batches_total == 60
    # Then the job ends (the timeout only protects against a hang)...
    try:
        job = engine.wait(job_id, timeout=90)
    except JobError as exc:
        stuck = [(b.number, b.status, b.attempts) for b in engine.repo.batches(job_id)
                 if b.status not in ("failed", "succeeded")]
        raise AssertionError(f"{exc}; batches not finished: {stuck}") from None
    # ...failed, every batch failed after its two attempts, each attempt's error kept
    assert job.status == "failed", engine.detail(job_id)
    batches = engine.repo.batches(job_id)
    assert {b.status for b in batches} == {"failed"}, engine.detail(job_id)
    assert all(b.attempts >= 2 for b in batches), engine.detail(job_id)
    errors = engine.repo.errors(job_id)
    assert {e.number for e in errors if e.final} == set(range(1, 61))
