"""The spec's "Event Replay" example, as written (Usage Examples), on real worker processes.

Replays run on the workers (Dramatiq on Redis): the handler prints in the
worker process, so its lines are looked for in the workers' log, and the
workers find the handler through ``tests.spec.replay_handlers``, which imports
this module's ``handle_user_event`` (the example's function itself).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest

from evstore.aio import EventRecord, EventReplayService, PostgreSQLEventStore, ReplayConfig

from .conftest import run


# Register event handler
def handle_user_event(event: EventRecord):  # type: ignore[no-untyped-def]  # as the spec writes it
    print(f"Processing: {event.event_type} for user {event.aggregate_id}")


@pytest.mark.usefixtures("only_these_handlers")
def test_event_replay(start_workers: Any, event_store: PostgreSQLEventStore,
                      capsys: pytest.CaptureFixture[str]) -> None:
    # start_workers first: it sets REDIS_URL (the embedded Redis when none is given),
    # which the example's EventReplayService(event_store) reads from the store's settings.
    users = [uuid4() for _ in range(3)]
    workers = start_workers(["tests.spec.replay_handlers"])

    async def seed() -> None:
        for user_id in users:
            await event_store.append_events(f"User-{user_id}", [
                EventRecord(user_id, "User", "UserCreated", {"email": f"{user_id}@example.com"},
                            aggregate_version=1),
                EventRecord(user_id, "User", "UserUpdated", {"name": "Ada"}, aggregate_version=2),
                EventRecord(user_id, "User", "UserLoggedIn", {}, aggregate_version=3),
            ])

    async def example() -> Any:
        await seed()
        # --- the spec's example ---------------------------------------------------------
        # Initialize replay service
        replay_service = EventReplayService(event_store)

        replay_service.register_event_handler("UserCreated", handle_user_event)

        # Replay recent events
        config = ReplayConfig(
            from_timestamp=datetime.now(timezone.utc) - timedelta(hours=24),  # noqa: UP017
            event_types=["UserCreated", "UserUpdated"],
            batch_size=100
        )

        result = await replay_service.replay_events(config)
        print(f"Replayed {result.successful_events} events")
        # --- end of the example ---------------------------------------------------------
        return result

    result = run(example())
    # Only UserCreated has a handler: the replay reads those three events.
    assert "Replayed 3 events" in capsys.readouterr().out.splitlines()
    assert (result.status, result.successful_events, result.failed_events) == ("succeeded", 3, 0)
    assert result.handler_counts == {"handle_user_event": 3}

    # The synchronous service, same workers: replay_events(config) is the job id, whose
    # successful_events waits for the job.
    from evstore.workers.replay import EventReplayService as SyncReplayService

    job = SyncReplayService(event_store.sync).replay_events(ReplayConfig(event_types=["UserCreated"]))
    assert isinstance(job, int) and job == result.job_id + 1
    assert job.successful_events == 3
    assert job.wait(timeout=5).status == "succeeded"

    workers.stop(timeout=20)
    assert workers.log_path is not None
    printed = [line for line in workers.log_path.read_text().splitlines()
               if line.startswith("Processing: ")]
    assert sorted(printed) == sorted(2 * [f"Processing: UserCreated for user {u}" for u in users])
