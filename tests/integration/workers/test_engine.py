"""The job engine against real PostgreSQL and Redis, batches run in this process.

Worker processes are in test_workers.py; here ``JobEngine.run_batch`` is
called directly (what the actor does for each delivery), so redelivery,
concurrent deliveries and dead runners can be staged exactly.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager

import psycopg
import pytest
from evstore.core.db import configure
from evstore.core.errors import ConfigurationError, JobNotFoundError
from evstore.core.jobs.batch_runs import BatchRun, mark_failed, sweep_orphans
from evstore.workers.engine import JobEngine
from evstore.workers.pool import wait_for
from evstore.workers.replay import ReplayConfig

from evstore import EventRecord

from .conftest import effects, seed


def _engine(service) -> JobEngine:
    return service.engine


def _run_all(engine: JobEngine, job_id: int, order=None) -> None:
    numbers = [b.number for b in engine.repo.batches(job_id)]
    for number in order(numbers) if order else numbers:
        engine.run_batch(job_id, number)


def test_start_splits_whole_streams_into_batches_and_sends_one_message_each(
    service, jobs_store, broker,
) -> None:
    # Given 30 streams of 7 events, appended in interleaved rounds
    total = seed(jobs_store, 30, 7)
    # When a replay is started with batches of about 50 events
    job_id = service.start(ReplayConfig(handler_names=["record"], batch_size=50))
    # Then every stream is in exactly one batch, and the batches cover every event
    batches = service.engine.repo.batches(job_id)
    assert len(batches) == 5  # 7 whole streams per batch: 49 events
    streams = [s for b in batches for s in b.params["streams"]]
    assert sorted(streams) == sorted(f"User-{i}" for i in range(30))
    assert sum(b.items_total for b in batches) == total == 210
    assert {b.status for b in batches} == {"queued"}
    job = service.engine.get(job_id)
    assert (job.status, job.items_total, job.batches_total) == ("queued", 210, 5)
    # And one Dramatiq message per batch waits in Redis
    queue = f"{broker.namespace}:{service.engine.settings.queue}"
    assert broker.client.llen(queue) == 5


def test_each_stream_in_stream_order_and_each_batch_in_global_order(service, jobs_store) -> None:
    seed(jobs_store, 40, 9, chunk=2)
    job_id = service.start(ReplayConfig(handler_names=["record"], batch_size=60))
    # Batches run in reverse order: no order between batches is promised...
    _run_all(service.engine, job_id, order=lambda ns: list(reversed(ns)))
    rows = effects(jobs_store, "SELECT batch, stream_id, stream_position, transaction_id, "
                   "global_position FROM public.replay_effects ORDER BY seq")
    assert len(rows) == 360
    # ...but each stream's events arrive in stream order,
    positions = defaultdict(list)
    for _batch, stream, pos, _tx, _gp in rows:
        positions[stream].append(pos)
    assert all(p == list(range(1, 10)) for p in positions.values())
    # and within a batch, in the global order (transaction, position).
    by_batch = defaultdict(list)
    for batch, _s, _p, tx, gp in rows:
        by_batch[batch].append((tx, gp))
    assert all(order == sorted(order) for order in by_batch.values())
    assert len(by_batch) > 1
    assert service.engine.get(job_id).status == "succeeded"


def test_a_transaction_open_at_planning_adds_no_event_when_it_commits_later(
    service, jobs_store, job_env, monkeypatch,
) -> None:
    # Given 4 streams of 3 events, and an append to User-0 whose transaction stays open
    seed(jobs_store, 4, 3)
    slow = psycopg.connect(job_env["DATABASE_URL"], autocommit=True)
    configure(slow)
    slow.execute("BEGIN")

    @contextmanager
    def open_transaction():
        yield slow

    late = EventRecord("0", "User", "EmailChanged", {"late": True}, aggregate_version=4)
    try:
        with monkeypatch.context() as patched:
            patched.setattr(jobs_store.db, "connection", open_transaction)
            jobs_store.append_events("User-0", [late])
        # When a replay is planned meanwhile, and the append commits before its batches run
        job_id = service.start(ReplayConfig(handler_names=["record"], batch_size=100))
        slow.execute("COMMIT")
    finally:
        slow.close()
    assert service.engine.get(job_id).items_total == 12
    _run_all(service.engine, job_id)
    # Then the job covers the events committed at planning only
    assert effects(jobs_store) == [(12, 12)]
    assert effects(jobs_store, "SELECT count(*) FROM public.replay_effects WHERE event_id = %s",
                   [late.event_id]) == [(0,)]
    assert service.engine.get(job_id).items_done == 12
    # and the next replay has it
    again = service.start(ReplayConfig(handler_names=["record"], batch_size=100))
    assert service.engine.get(again).items_total == 13


def test_a_batch_delivered_twice_takes_effect_once(service, jobs_store) -> None:
    seed(jobs_store, 10, 4)
    job_id = service.start(ReplayConfig(handler_names=["record"], batch_size=100))
    engine = service.engine
    assert engine.run_batch(job_id, 1) == "succeeded"
    # A redelivered message (the worker died after commit, before the ack)
    assert engine.run_batch(job_id, 1) == "skipped"
    assert effects(jobs_store) == [(40, 40)]
    batch = engine.repo.batches(job_id)[0]
    assert (batch.status, batch.attempts, batch.items_done) == ("succeeded", 1, 40)


def test_concurrent_deliveries_of_one_batch_run_it_once(service, jobs_store, monkeypatch) -> None:
    monkeypatch.setenv("EVSTORE_TEST_DELAY", "0.002")
    seed(jobs_store, 20, 5)
    job_id = service.start(ReplayConfig(handler_names=["slow_record"], batch_size=1000))
    outcomes: list[str] = []
    barrier = threading.Barrier(3)

    def deliver() -> None:
        barrier.wait()
        outcomes.append(service.engine.run_batch(job_id, 1))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["skipped", "skipped", "succeeded"]
    assert effects(jobs_store) == [(100, 100)]


def test_failed_attempt_is_rolled_back_recorded_then_requeued_after_the_fix(
    service, jobs_store, monkeypatch,
) -> None:
    # Given one poison event among 60 streams of 3 events
    seed(jobs_store, 60, 3, data=lambda s, i: {"poison": s == 42 and i == 1})
    poison = next(e for e in jobs_store.read_stream("User-42") if e.event_data.get("poison"))
    job_id = service.start(ReplayConfig(handler_names=["fragile"], batch_size=30))
    engine = service.engine
    # When every batch runs, the poisoned one raises
    failures = []
    for b in engine.repo.batches(job_id):
        try:
            engine.run_batch(job_id, b.number)
        except Exception as exc:  # the actor lets it propagate to Dramatiq's Retries
            failures.append((b.number, exc))
    assert len(failures) == 1
    number, exc = failures[0]
    # Then the attempt's effects were rolled back and its error kept
    bad = next(b for b in engine.repo.batches(job_id) if b.number == number)
    assert bad.status == "retrying"
    assert bad.error_item == str(poison.event_id)
    assert "poison" in bad.last_error and "fragile" in bad.last_error
    assert effects(jobs_store) == [(180 - bad.items_total, 180 - bad.items_total)]
    # When Dramatiq gives up (what the BatchFailures middleware does)
    assert mark_failed(engine.repo, job_id, number, exc.evstore_attempt, error=str(exc))
    job = engine.get(job_id)
    assert (job.status, job.batches_failed, job.items_failed) == ("failed", 1, bad.items_total)
    [final] = [e for e in engine.repo.errors(job_id) if e.final]
    assert final.item == str(poison.event_id)
    # And after the fix, a requeue completes the job with every event delivered once
    monkeypatch.setenv("EVSTORE_TEST_FIXED", "1")
    assert engine.requeue(job_id) == [number]
    assert engine.get(job_id).status == "running"
    assert engine.run_batch(job_id, number) == "succeeded"
    assert engine.get(job_id).status == "succeeded"
    assert effects(jobs_store) == [(180, 180)]
    result = service.result(job_id)
    assert (result.successful_events, result.failed_events) == (180, 0)
    assert result.handler_counts == {"fragile": 180}


def test_stop_on_error_cancels_the_batches_not_started(service, jobs_store) -> None:
    seed(jobs_store, 6, 2, data=lambda s, i: {"poison": s == 0})
    job_id = service.start(ReplayConfig(handler_names=["fragile"], batch_size=2,
                                        stop_on_error=True))
    engine = service.engine
    bad = next(b.number for b in engine.repo.batches(job_id) if "User-0" in b.params["streams"])
    with pytest.raises(Exception, match="poison") as caught:
        engine.run_batch(job_id, bad)
    assert mark_failed(engine.repo, job_id, bad, caught.value.evstore_attempt, error="gave up")
    statuses = {b.number: b.status for b in engine.repo.batches(job_id)}
    assert statuses[bad] == "failed"
    assert sorted(set(statuses.values())) == ["cancelled", "failed"]
    assert engine.get(job_id).status == "failed"


def test_orphan_sweep_resends_a_running_batch_only_when_its_runner_is_gone(service, jobs_store) -> None:
    seed(jobs_store, 10, 2)
    job_id = service.start(ReplayConfig(handler_names=["record"], batch_size=5))
    engine = service.engine
    with BatchRun.claim(engine.repo, job_id, 1, "doomed-worker") as run:
        assert run is not None and run.start() is not None
        # While its runner holds the claim, the batch is left alone
        assert engine.sweep() == []
        # and another delivery of its message is dropped
        assert engine.run_batch(job_id, 1) == "skipped"
    # The runner is gone (its claim released, as when its connection dies): the
    # batch, still 'running', is sent again and then runs to completion.
    assert engine.repo.batches(job_id)[0].status == "running"
    # An engine without a broker (the scheduler's) cannot send it: a clear error, nothing changed
    with pytest.raises(ConfigurationError, match="no broker"):
        JobEngine(jobs_store, None).sweep()
    assert engine.repo.batches(job_id)[0].status == "running"
    assert engine.sweep() == [(job_id, 1)]
    assert engine.repo.batches(job_id)[0].status == "queued"
    assert engine.run_batch(job_id, 1) == "succeeded"
    assert engine.repo.batches(job_id)[0].attempts == 2


# The orphan sweep and `requeue --stale` send a batch's message while their
# transaction is open: a worker that receives it before they commit must wait and
# run the batch, not find the claim taken and drop the only message (the batch
# would then stay 'queued' forever).


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


def _job_with_a_dead_runner(service, jobs_store) -> tuple[JobEngine, int]:
    """A replay whose batch 1 is 'running' with its runner gone (claim free)."""
    seed(jobs_store, 10, 2)
    job_id = service.start(ReplayConfig(handler_names=["record"], batch_size=5))
    engine = service.engine
    with BatchRun.claim(engine.repo, job_id, 1, "doomed-worker") as run:
        assert run is not None and run.start() is not None
    assert engine.repo.batches(job_id)[0].status == "running"
    return engine, job_id


def _deliver_early(engine, jobs_store, results: list[str]):
    """A ``send`` that delivers each message to a thread at once, and a join of those threads."""
    threads: list[threading.Thread] = []

    def send(job_id: int, numbers: list[int]) -> None:
        # The broker hands the message to a worker at once, before the sender commits.
        for number in numbers:
            t = threading.Thread(target=lambda n=number: results.append(engine.run_batch(job_id, n)))
            t.start()
            threads.append(t)
            _blocked_or_done(jobs_store, t, time.monotonic() + 10)

    def join() -> None:
        for t in threads:
            t.join(10)

    return send, join


def test_sweep_lets_a_delivery_that_arrives_before_its_commit_run_the_batch(service, jobs_store) -> None:
    engine, job_id = _job_with_a_dead_runner(service, jobs_store)
    results: list[str] = []
    send, join = _deliver_early(engine, jobs_store, results)
    assert sweep_orphans(engine.repo, send) == [(job_id, 1)]
    join()
    # The only message sent for the batch must run it, not be dropped ("skipped":
    # claim taken by the sweep), which would leave the batch stuck 'queued'.
    assert results == ["succeeded"], results
    assert engine.repo.batches(job_id)[0].status == "succeeded"


def test_requeue_stale_lets_a_delivery_that_arrives_before_its_commit_run_the_batch(
    service, jobs_store,
) -> None:
    engine, job_id = _job_with_a_dead_runner(service, jobs_store)
    results: list[str] = []
    send, join = _deliver_early(engine, jobs_store, results)
    assert engine.repo.requeue(job_id, send, number=1, stale=True) == [1]
    join()
    assert results == ["succeeded"], results
    assert engine.repo.batches(job_id)[0].status == "succeeded"


def test_a_killed_runner_connection_frees_its_batch(service, jobs_store, job_env) -> None:
    seed(jobs_store, 4, 2)
    job_id = service.start(ReplayConfig(handler_names=["record"], batch_size=100))
    # A runner on its own connection claims and starts the batch, then dies.
    from evstore.core.jobs.claims import claim_key

    conn = psycopg.connect(job_env["DATABASE_URL"], autocommit=True)
    conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                 [claim_key(jobs_store.schema, job_id, 1)])
    conn.execute(f"UPDATE {jobs_store.table('job_batches')} SET status = 'running', "
                 "attempts = 1 WHERE job_id = %s AND number = 1", [job_id])
    assert service.engine.sweep() == []
    conn.close()
    # The server notices the closed socket and frees the session's locks soon after
    assert wait_for(service.engine.sweep, timeout=10, what="the sweep") == [(job_id, 1)]


def test_cancel_drops_batches_not_started(service, jobs_store) -> None:
    seed(jobs_store, 12, 2)
    job_id = service.start(ReplayConfig(handler_names=["record"], batch_size=6))
    engine = service.engine
    assert engine.run_batch(job_id, 1) == "succeeded"
    assert engine.cancel(job_id) == [2, 3, 4]
    assert engine.get(job_id).status == "cancelled"
    # Their messages are still in Redis: delivered, they do nothing
    assert engine.run_batch(job_id, 2) == "skipped"
    assert effects(jobs_store) == [(6, 6)]
    # Resuming sends them again
    assert engine.requeue(job_id, include_cancelled=True) == [2, 3, 4]
    _run_all(engine, job_id)
    assert engine.get(job_id).status == "succeeded"
    assert effects(jobs_store) == [(24, 24)]


def test_selection_filters_and_handlers_narrow_the_events(service, jobs_store) -> None:
    seed(jobs_store, 10, 3)  # per stream: UserRegistered, UserLoggedIn, EmailChanged
    engine = service.engine
    # A handler of one event type only reads that type
    job = service.start(ReplayConfig(handler_names=["only_logins"]))
    assert engine.get(job).items_total == 10
    assert engine.get(job).params["event_types"] == ["UserLoggedIn"]
    # Filters by aggregate id and by global position
    job = service.start(ReplayConfig(handler_names=["record"], aggregate_ids=["3", "4"]))
    assert engine.get(job).items_total == 6
    job = service.start(ReplayConfig(handler_names=["record"], from_position=5, to_position=14))
    assert engine.get(job).items_total == 10
    _run_all(engine, job)
    got = effects(jobs_store, "SELECT min(global_position), max(global_position) "
                  "FROM public.replay_effects WHERE job_id = %s", [job])
    assert got == [(5, 14)]


def test_unknown_job_id_is_a_clear_error(service) -> None:
    with pytest.raises(JobNotFoundError, match="no job with id 999"):
        service.engine.get(999)
    with pytest.raises(JobNotFoundError):
        service.engine.cancel(999)
    with pytest.raises(JobNotFoundError):
        service.engine.requeue(999)
