"""The spec's "Event Querying" example, as written (Usage Examples)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from uuid import UUID, uuid4

import pytest

from evstore.aio import EventQueryService, EventRecord, EventSearchCriteria, PostgreSQLEventStore

from .conftest import run


def test_event_querying(event_store: PostgreSQLEventStore, user_id: UUID,
                        capsys: pytest.CaptureFixture[str]) -> None:
    old = datetime.now(timezone.utc) - timedelta(days=40)  # noqa: UP017
    other = uuid4()

    async def seed() -> None:
        await event_store.append_events(f"User-{user_id}", [
            EventRecord(user_id, "User", "UserCreated", {"email": "first@example.com"},
                        aggregate_version=1, created_at=old),
            EventRecord(user_id, "User", "UserUpdated", {"email": "email@example.com"},
                        aggregate_version=2),
            EventRecord(user_id, "User", "UserLoggedIn", {}, aggregate_version=3),
            EventRecord(user_id, "User", "UserUpdated", {"name": "Ada"}, aggregate_version=4),
        ])
        await event_store.append_events(f"User-{other}", [
            EventRecord(other, "User", "UserCreated", {"email": "email@example.com"},
                        aggregate_version=1),
            EventRecord(other, "User", "UserDeleted", {"email": "email@example.com"},
                        aggregate_version=2),
        ])

    async def example() -> list[EventRecord]:
        await seed()
        # --- the spec's example ---------------------------------------------------------
        # Initialize query service
        query_service = EventQueryService(event_store)

        # Search for user events
        criteria = EventSearchCriteria(
            aggregate_ids=[user_id],
            event_types=["UserCreated", "UserUpdated"],
            from_timestamp=datetime.now(timezone.utc) - timedelta(days=30)  # noqa: UP017
        )

        result, metrics = await query_service.query_events(criteria)
        print(f"Found {len(result.events)} events in {metrics.query_duration_ms}ms")

        # Full-text search in event data
        events = await query_service.search_event_content(
            "email@example.com",
            event_types=["UserCreated", "UserUpdated"]
        )
        # --- end of the example ---------------------------------------------------------
        return events

    events = run(example())
    out = capsys.readouterr().out
    assert re.fullmatch(r"Found 2 events in \d+(\.\d+)?ms\n", out), out
    # The user's UserUpdated with that address and the other user's UserCreated; not the
    # UserDeleted (another type) nor the first address.
    assert sorted((e.aggregate_id, e.event_type) for e in events) == sorted(
        [(str(user_id), "UserUpdated"), (str(other), "UserCreated")])
