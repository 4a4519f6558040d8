"""The orphan sweep and `requeue --stale` send a batch's message while their
transaction is open: a worker that receives it before they commit must wait and
run the batch, not find the claim taken and drop the only message (the batch
would then stay 'queued' forever)."""

from __future__ import annotations

import threading
import time

from evstore.core.jobs.batch_runs import BatchRun, sweep_orphans
from evstore.workers.replay import ReplayConfig

from tests.integration.workers.conftest import seed


def _blocked_or_done(store, thread: threading.Thread, deadline: float) -> None:
    """Wait until the delivery finished or waits on a lock (the sweep's row lock)."""
    while time.monotonic() < deadline:
        if not thread.is_alive():
            return
        with store.connection() as conn:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            ).fetchone()[0]
        if waiting:
            return
        time.sleep(0.01)
    raise AssertionError("the delivery neither finished nor waited")


def _dead_runner(engine, job_id: int) -> None:
    with BatchRun.claim(engine.repo, job_id, 1, "doomed-worker") as run:
        assert run is not None and run.start() is not None
    assert engine.repo.batches(job_id)[0].status == "running"


def _deliver_early(engine, jobs_store, results: list[str]):
    threads: list[threading.Thread] = []

    def send(job_id: int, numbers: list[int]) -> None:
        # The broker hands the message to a worker at once, before the sender commits.
        for number in numbers:
            t = threading.Thread(target=lambda n=number: results.append(engine.run_batch(job_id, n)))
            t.start()
            threads.append(t)
            _blocked_or_done(jobs_store, t, time.monotonic() + 10)

    return send, threads


def test_sweep_drops_a_delivery_that_arrives_before_its_commit(service, jobs_store) -> None:
    seed(jobs_store, 10, 2)
    job_id = service.start(ReplayConfig(handler_names=["record"], batch_size=5))
    engine = service.engine
    _dead_runner(engine, job_id)
    results: list[str] = []
    send, threads = _deliver_early(engine, jobs_store, results)
    assert sweep_orphans(engine.repo, send) == [(job_id, 1)]
    for t in threads:
        t.join(10)
    # The only message sent for the batch must run it; instead it was dropped
    # ("skipped": claim taken by the sweep) and the batch is stuck 'queued'.
    assert results == ["succeeded"], results
    assert engine.repo.batches(job_id)[0].status == "succeeded"


def test_requeue_stale_drops_a_delivery_that_arrives_before_its_commit(service, jobs_store) -> None:
    seed(jobs_store, 10, 2)
    job_id = service.start(ReplayConfig(handler_names=["record"], batch_size=5))
    engine = service.engine
    _dead_runner(engine, job_id)
    results: list[str] = []
    send, threads = _deliver_early(engine, jobs_store, results)
    assert engine.repo.requeue(job_id, send, number=1, stale=True) == [1]
    for t in threads:
        t.join(10)
    assert results == ["succeeded"], results
    assert engine.repo.batches(job_id)[0].status == "succeeded"
