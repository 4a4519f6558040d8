"""Scheduler replicas: missed periods coalesce into one firing.

(Two real `evstore scheduler` processes firing each period once:
tests/acceptance/test_scheduler_cli.py.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from evstore.core.jobs.firings import list_firings
from evstore.schedules import Schedule, SchedulerService, Trigger, engine_enqueue
from evstore.workers.broker import make_broker
from evstore.workers.engine import JobEngine
from evstore.workers.settings import load_job_settings

from evstore import PostgreSQLEventStore

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def namespace() -> Iterator[str]:
    ns = f"evstore-test-{uuid.uuid4().hex[:8]}"
    yield ns
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{ns}*"))
    if keys:
        client.delete(*keys)


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
