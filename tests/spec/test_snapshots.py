"""The spec's "Snapshot Management" example, as written (Usage Examples)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from evstore.aio import (
    Aggregate,
    EventRecord,
    EventSnapshot,
    PostgreSQLEventStore,
    SnapshotConfig,
    SnapshotStrategy,
)

from .conftest import run


class User(Aggregate):
    """The example's aggregate (the spec names ``User`` without defining it)."""

    aggregate_type = "User"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.email: str | None = None
        self.logins = 0

    def apply(self, event: EventRecord) -> None:
        if event.event_type in ("UserCreated", "UserUpdated"):
            self.email = event.event_data.get("email", self.email)
        elif event.event_type == "UserLoggedIn":
            self.logins += 1

    def save(self) -> dict[str, Any]:
        return {"email": self.email, "logins": self.logins}

    def restore(self, state: dict[str, Any]) -> None:
        self.email, self.logins = state["email"], state["logins"]


def test_snapshot_management(event_store: PostgreSQLEventStore, user_id: UUID) -> None:
    async def seed() -> None:
        events = [EventRecord(user_id, "User", "UserCreated", {"email": "a@example.com"},
                              aggregate_version=1)]
        events += [EventRecord(user_id, "User", "UserLoggedIn", {}, aggregate_version=v)
                   for v in range(2, 60)]
        events.append(EventRecord(user_id, "User", "UserUpdated", {"email": "b@example.com"},
                                  aggregate_version=60))
        await event_store.append_events(f"User-{user_id}", events)

    async def example() -> tuple[Any, int, Any]:
        await seed()
        # --- the spec's example ---------------------------------------------------------
        # Initialize snapshot service
        snapshot_service = EventSnapshot(
            event_store,
            SnapshotConfig(
                strategy=SnapshotStrategy.EVENT_COUNT,
                event_threshold=50
            )
        )

        # Load aggregate with snapshot optimization
        user, version = await snapshot_service.load_aggregate_with_events(
            User, user_id, "User"
        )

        # Create snapshot manually
        await snapshot_service.create_snapshot(
            user, user_id, "User", version
        )
        # --- end of the example ---------------------------------------------------------
        latest = await snapshot_service.latest(User, user_id, "User")
        again, again_version = await snapshot_service.load_aggregate_with_events(User, user_id, "User")
        return (user, version, snapshot_service), latest, (again, again_version)

    (user, version, service), latest, (again, again_version) = run(example())
    assert service.sync.config.every_n_events == 50
    assert (version, user.email, user.logins) == (60, "b@example.com", 58)
    assert latest is not None and latest.aggregate_version == 60
    assert latest.aggregate_id == str(user_id)
    assert latest.state == {"email": "b@example.com", "logins": 58}
    assert (again_version, again.email, again.logins) == (60, "b@example.com", 58)
