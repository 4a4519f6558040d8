"""Replays through real `dramatiq` worker processes on real Redis and PostgreSQL."""

from __future__ import annotations

from collections import defaultdict

import pytest
from evstore.workers.pool import wait_for
from evstore.workers.replay import ReplayConfig

from .conftest import effects, seed

pytestmark = pytest.mark.slow


def _heartbeats(broker) -> int:
    """Worker processes (broker instances) that have talked to this namespace recently."""
    return int(broker.client.zcard(f"{broker.namespace}:__heartbeats__"))


def test_tens_of_thousands_of_events_each_delivered_once_in_stream_order(
    service, jobs_store, start_workers, broker,
) -> None:
    # Given 20,000 events of 1,000 users, appended in rounds so streams interleave
    total = seed(jobs_store, 1000, 20, chunk=10)
    assert total == 20_000
    # When two worker processes replay them in batches of about 2,500 events
    start_workers(processes=2, threads=2)
    wait_for(lambda: _heartbeats(broker) >= 2, timeout=60, what="both processes polling Redis")
    result = service.replay_events(ReplayConfig(handler_names=["record"], batch_size=2500),
                                   wait=True, timeout=240)
    # Then the job succeeded with every matching event delivered...
    assert result.status == "succeeded"
    assert (result.successful_events, result.failed_events) == (20_000, 0)
    assert result.handler_counts == {"record": 20_000}
    batches = service.engine.repo.batches(result.job_id)
    assert len(batches) == 8 and all(b.status == "succeeded" for b in batches)
    # ...and taking effect exactly once each
    [(rows, distinct)] = effects(jobs_store)
    assert rows == distinct == 20_000
    stored = {e.event_id for e in jobs_store.iter_all()}
    got = {r[0] for r in effects(jobs_store, "SELECT event_id FROM public.replay_effects")}
    assert got == stored
    # Each stream's events in stream order; each batch's in the global order
    streams, order = defaultdict(list), defaultdict(list)
    for stream, pos, batch, tx, gp in effects(
            jobs_store, "SELECT stream_id, stream_position, batch, transaction_id, "
            "global_position FROM public.replay_effects ORDER BY seq"):
        streams[stream].append(pos)
        order[batch].append((tx, gp))
    assert all(p == list(range(1, 21)) for p in streams.values())
    assert all(o == sorted(o) for o in order.values())
    # Both worker processes did some of the work
    pids = effects(jobs_store, "SELECT count(DISTINCT worker_pid) FROM public.replay_effects")
    assert pids == [(2,)]


def test_a_worker_killed_mid_job_loses_and_doubles_nothing(
    service, jobs_store, start_workers, broker,
) -> None:
    # Given a replay of 20 batches, slow enough to kill its worker in the middle
    total = seed(jobs_store, 300, 10, chunk=10)
    first = start_workers(processes=1, threads=2, EVSTORE_TEST_DELAY="0.002")
    job_id = service.start(ReplayConfig(handler_names=["slow_record"], batch_size=150))
    engine = service.engine

    def mid_job() -> bool:
        status = [b.status for b in engine.repo.batches(job_id)]
        # both threads running: a kill then catches at least one of them mid-batch
        # (with one running, it could finish between this look and the kill)
        return (status.count("succeeded") >= 1 and status.count("running") >= 2
                and status.count("queued") >= 5)

    wait_for(mid_job, timeout=60, interval=0.05, what="a batch done, two running, many to go")
    # When the whole worker (master and workers) is SIGKILLed
    first.kill()
    assert any(b.status == "running" for b in engine.repo.batches(job_id))
    # Then another worker takes over and the job completes
    start_workers(processes=1, threads=2, EVSTORE_TEST_DELAY="0.0005")
    job = engine.wait(job_id, timeout=120)
    assert job.status == "succeeded"
    assert job.items_done == total == 3000
    # with every event taking effect exactly once
    assert effects(jobs_store) == [(3000, 3000)]
    # and what the killed worker was running ran again, in a new attempt (a batch
    # whose commit was already on its way when the worker died may have succeeded)
    assert max(b.attempts for b in engine.repo.batches(job_id)) >= 2


def test_two_worker_pools_share_the_batches_of_one_job(
    service, jobs_store, start_workers, broker,
) -> None:
    seed(jobs_store, 100, 10, chunk=10)
    # Two separate `dramatiq` commands (as on two machines), one process each
    start_workers(processes=1, threads=1, EVSTORE_TEST_DELAY="0.002")
    start_workers(processes=1, threads=1, EVSTORE_TEST_DELAY="0.002")
    wait_for(lambda: _heartbeats(broker) >= 2, timeout=60, what="both pools polling Redis")
    result = service.replay_events(ReplayConfig(handler_names=["slow_record"], batch_size=100),
                                   wait=True, timeout=120)
    assert result.status == "succeeded"
    assert effects(jobs_store) == [(1000, 1000)]
    workers = {b.worker for b in service.engine.repo.batches(result.job_id)}
    assert len(workers) == 2, workers
    assert effects(jobs_store, "SELECT count(DISTINCT worker_pid) FROM public.replay_effects") == [(2,)]
