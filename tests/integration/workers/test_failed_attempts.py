"""What a failed attempt leaves behind, and batches whose retry or failure record never came.

Batches run in this process (``JobEngine.run_batch``, what the actor does for
each delivery) against real PostgreSQL and Redis, so the two causes of the
"batch stranded 'retrying'" bug are staged exactly:

- a failed replay attempt's leftovers (its exception's frames hold the
  generator over the batch's server-side cursor) freed while their connection,
  back in the pool, serves another transaction: the generator's ``CLOSE``
  aborted that transaction (``mark_failed`` then hit InFailedSqlTransaction,
  and a retry's start was rolled back at COMMIT without an error);
- a batch left 'retrying' with no retry coming (its failure could not be
  recorded, or its retry message was lost): the sweep finishes it.
"""

from __future__ import annotations

import gc

from evstore.workers.engine import BatchAttemptFailed, JobEngine
from evstore.workers.pool import wait_for
from evstore.workers.replay import EventReplayService, ReplayConfig

from evstore import PostgreSQLEventStore

from .conftest import effects, seed


def _poison(_stream: int, i: int) -> dict[str, object]:
    return {"poison": True, "n": i}


def _fail_once(engine: JobEngine, job_id: int, number: int) -> BatchAttemptFailed:
    # A failed attempt's connection is closed; its server session, and with it the
    # batch's claim, ends a moment later. A delivery in between is skipped (as one
    # racing another worker would be): deliver again, as Dramatiq's retry would.
    def deliver() -> object:
        try:
            return engine.run_batch(job_id, number) != "skipped" and "ran without failing"
        except BatchAttemptFailed as exc:
            return exc

    outcome = wait_for(deliver, timeout=30, what="the previous attempt's claim to be released")
    if not isinstance(outcome, BatchAttemptFailed):
        raise AssertionError(f"the attempt did not fail ({outcome})")
    return outcome


def test_a_failed_attempts_leftovers_never_touch_a_later_transaction(
    job_env, broker, monkeypatch,
) -> None:
    import tests.integration.workers.handlers  # noqa: F401

    # One pooled connection: the next transaction gets the failed run's connection
    # back, if the pool still has it.
    monkeypatch.setenv("EVENT_STORE_POOL_SIZE", "1")
    with PostgreSQLEventStore(job_env["DATABASE_URL"]) as store:
        seed(store, 3, 2, data=_poison)
        service = EventReplayService(store, broker)
        engine = service.engine
        job_id = service.start(ReplayConfig(handler_names=["fragile"], batch_size=100))
        gc.disable()  # the leftovers are freed below, not at a random allocation
        try:
            # Given a failed attempt whose exception (what Dramatiq's middleware still
            # holds) keeps the attempt's frames, and its cursor's generator, alive
            kept = _fail_once(engine, job_id, 1)
            assert engine.repo.batches(job_id)[0].status == "retrying"
            # When they are freed while another transaction runs on a pooled connection
            with store.connection() as conn, conn.transaction():
                conn.execute("SELECT 1")
                del kept
                gc.collect()
                # Then that transaction is untouched (it was aborted: InFailedSqlTransaction)
                assert conn.execute("SELECT 2").fetchone() == (2,)
        finally:
            gc.enable()
        # and recording the batch's failure works, as BatchFailures does it
        from evstore.core.jobs.batch_runs import mark_failed

        assert mark_failed(engine.repo, job_id, 1, 1, error="RuntimeError: given up")
        assert engine.get(job_id).status == "failed"


def test_a_batch_whose_failure_was_never_recorded_is_failed_by_the_sweep(
    service, jobs_store,
) -> None:
    # Given a batch whose two attempts (the first and its one retry) failed,
    seed(jobs_store, 4, 2, data=_poison)
    engine = service.engine
    assert engine.settings.max_retries == 1
    job_id = service.start(ReplayConfig(handler_names=["fragile"], batch_size=100))
    for _ in range(2):
        _fail_once(engine, job_id, 1)
    # and whose final failure BatchFailures could not record: 'retrying', no message coming
    batch = engine.repo.batches(job_id)[0]
    assert (batch.status, batch.attempts) == ("retrying", 2)
    # When the sweep runs after the retry was due (the timeout only guards a hang)
    swept = wait_for(engine.sweep, timeout=60, what="the sweep to finish the batch")
    # Then the batch and the job are failed, the last error marked final
    assert swept == [(job_id, 1)]
    batch = engine.repo.batches(job_id)[0]
    assert (batch.status, batch.attempts) == ("failed", 2)
    assert engine.get(job_id).status == "failed"
    assert [(e.attempt, e.final) for e in engine.repo.errors(job_id)] == [(1, False), (2, True)]
    assert engine.sweep() == []


def test_a_batch_whose_retry_never_came_is_sent_again_and_runs_once(
    service, jobs_store, broker, monkeypatch,
) -> None:
    # Given a batch whose first attempt failed, and whose retry message is lost
    seed(jobs_store, 4, 2, data=_poison)
    engine = service.engine
    job_id = service.start(ReplayConfig(handler_names=["fragile"], batch_size=100))
    _fail_once(engine, job_id, 1)
    broker.flush_all()
    # When the sweep runs after the retry was due
    assert wait_for(engine.sweep, timeout=60, what="the sweep to resend") == [(job_id, 1)]
    # Then the batch is queued again with a message, and runs (the fix deployed meanwhile)
    assert engine.repo.batches(job_id)[0].status == "queued"
    queue = f"{broker.namespace}:{engine.settings.queue}"
    assert broker.client.llen(queue) == 1
    monkeypatch.setenv("EVSTORE_TEST_FIXED", "1")
    assert engine.run_batch(job_id, 1) == "succeeded"
    assert engine.run_batch(job_id, 1) == "skipped"  # the extra delivery, if any
    assert effects(jobs_store) == [(8, 8)]
    assert engine.get(job_id).status == "succeeded"
    assert engine.sweep() == []
