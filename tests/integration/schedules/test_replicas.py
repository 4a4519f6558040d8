"""Scheduler replicas: missed periods coalesce into one firing; a claim whose replica died
is taken over by one survivor; an enqueue error is stored without secrets.

(Two real `evstore scheduler` processes firing each period once:
tests/acceptance/test_scheduler_cli.py.)
"""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from evstore.core.jobs.firings import claim_firing, list_firings
from evstore.schedules import Schedule, SchedulerService, Trigger, engine_enqueue
from evstore.schedules.service import firing_tag
from evstore.workers.broker import make_broker
from evstore.workers.engine import JobEngine
from evstore.workers.settings import load_job_settings

from evstore import PostgreSQLEventStore

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")




def test_missed_periods_coalesce_into_one_firing(database_url: str, namespace: str) -> None:
    settings = load_job_settings(namespace=namespace)
    with PostgreSQLEventStore(database_url) as store:
        engine = JobEngine(store, make_broker(REDIS_URL, settings), settings)
        schedule = Schedule("upkeep", "partitions", Trigger.parse("interval: 1m", "test"),
                            {"months_ahead": 3})
        service = SchedulerService(store, engine_enqueue(engine), {"upkeep": schedule},
                                   replica="test")
        now = datetime(2030, 5, 1, 12, 0, 30, tzinfo=UTC)
        # Given a firing ten periods ago, and every replica down since
        assert service.fire(schedule, now - timedelta(minutes=10, seconds=30)).claimed

        # When a replica starts, then another
        first = service.catch_up(now)
        second = SchedulerService(store, engine_enqueue(engine), {"upkeep": schedule},
                                  replica="other").catch_up(now)

        # Then the ten missed periods fired once, for the latest due time
        assert [(o.scheduled_for, o.claimed) for o in first] == [
            (datetime(2030, 5, 1, 12, 0, tzinfo=UTC), True)]
        assert second == []  # the latest due time has its firing now
        assert len(list_firings(store, "upkeep")) == 2
        assert len(engine.list_jobs(kind="partitions")) == 2


def _stale_claim(store: PostgreSQLEventStore, policy: str, at: datetime, replica: str) -> None:
    """A claim with no job, made ten minutes ago by a replica that is gone."""
    assert claim_firing(store, policy, at, replica)
    with store.connection() as conn:
        conn.execute(f"UPDATE {store.table('schedule_firings')} SET fired_at = now() - "
                     "interval '10 minutes' WHERE policy = %s AND scheduled_for = %s", [policy, at])


def test_a_stale_claim_is_taken_over_by_one_replica(database_url: str, namespace: str) -> None:
    settings = load_job_settings(namespace=namespace)
    with PostgreSQLEventStore(database_url) as store:
        engine = JobEngine(store, make_broker(REDIS_URL, settings), settings)
        schedule = Schedule("upkeep", "partitions", Trigger.parse("interval: 1h", "test"),
                            {"months_ahead": 1})
        at = datetime(2030, 5, 1, 12, tzinfo=UTC)
        _stale_claim(store, "upkeep", at, "dead")
        # A fresh claim (its replica may still be enqueueing) is left alone
        fresh = datetime(2030, 5, 1, 13, tzinfo=UTC)
        assert claim_firing(store, "upkeep", fresh, "busy")
        services = [SchedulerService(store, engine_enqueue(engine), {"upkeep": schedule},
                                     replica=f"r{i}", grace=60) for i in range(4)]
        # When four replicas look for stale claims at once
        barrier = threading.Barrier(4)

        def recover(service: SchedulerService) -> list[Any]:
            barrier.wait()
            return service.recover()

        with ThreadPoolExecutor(4) as pool:
            outcomes = [o for found in pool.map(recover, services) for o in found]
        # Then exactly one of them enqueued the period, and recorded it
        assert [(o.scheduled_for, o.claimed, o.error) for o in outcomes] == [(at, True, None)]
        firing = {f.scheduled_for: f for f in list_firings(store, "upkeep")}
        assert firing[at].status == "enqueued" and firing[at].job_id == outcomes[0].job_id
        assert firing[at].detail == "taken over from dead"
        assert (firing[fresh].status, firing[fresh].replica) == ("claimed", "busy")
        assert len(engine.list_jobs(kind="partitions")) == 1


def test_a_taken_over_firing_reuses_the_job_its_dead_replica_created(
    database_url: str, namespace: str,
) -> None:
    settings = load_job_settings(namespace=namespace)
    with PostgreSQLEventStore(database_url) as store:
        engine = JobEngine(store, make_broker(REDIS_URL, settings), settings)
        schedule = Schedule("upkeep", "partitions", Trigger.parse("interval: 1h", "test"),
                            {"months_ahead": 1})
        at = datetime(2030, 5, 1, 12, tzinfo=UTC)
        _stale_claim(store, "upkeep", at, "dead")
        # The dead replica had created the job (batches never sent) before dying
        from evstore.workers.maintenance_jobs import KIND

        plan = engine_kind_plan(engine, KIND, {"months_ahead": 1})
        job_id = engine.repo.create(KIND, plan.params, plan.batches, firing_tag("upkeep", at))
        [outcome] = SchedulerService(store, engine_enqueue(engine), {"upkeep": schedule},
                                     replica="survivor", grace=60).recover()
        assert outcome.job_id == str(job_id)
        assert len(engine.list_jobs(kind="partitions")) == 1
        assert {b.status for b in engine.repo.batches(job_id)} == {"queued"}


def engine_kind_plan(engine: JobEngine, kind: str, params: dict[str, Any]) -> Any:
    from evstore.workers.kinds import get_job_kind

    return get_job_kind(kind).plan(engine.store, params)


def test_an_enqueue_error_is_stored_and_logged_without_the_redis_password(
    database_url: str, namespace: str, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = load_job_settings(namespace=namespace)
    secret = f"s3cret{uuid.uuid4().hex[:8]}"
    with PostgreSQLEventStore(database_url) as store:
        broker = make_broker(f"redis://:{secret}@127.0.0.1:1/0?password={secret}", settings,
                             check=False)
        engine = JobEngine(store, broker, settings)
        schedule = Schedule("upkeep", "partitions", Trigger.parse("interval: 1h", "test"),
                            {"months_ahead": 1})
        at = datetime(2030, 5, 1, 12, tzinfo=UTC)
        outcome = SchedulerService(store, engine_enqueue(engine), {"upkeep": schedule},
                                   replica="r").fire(schedule, at)
        [firing] = list_firings(store, "upkeep")
    assert firing.status == "failed" and firing.detail == outcome.error
    assert "BrokerUnavailableError" in firing.detail and "127.0.0.1:1" in firing.detail
    assert secret not in firing.detail and "redis://:" not in firing.detail
    logged = capsys.readouterr()
    assert "firing.failed" in logged.out + logged.err
    assert secret not in logged.out + logged.err
