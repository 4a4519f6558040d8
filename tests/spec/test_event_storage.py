"""The spec's "Basic Event Storage" example, as written (Usage Examples)."""

from __future__ import annotations

from datetime import datetime, timezone
from uuid import UUID, uuid4

from psycopg_pool import ConnectionPool

from evstore.aio import EventMetadata, EventRecord, PostgreSQLEventStore

from .conftest import run


def test_basic_event_storage(connection_pool: ConnectionPool, user_id: UUID) -> None:
    async def example() -> PostgreSQLEventStore:
        # --- the spec's example ---------------------------------------------------------
        # Initialize event store
        event_store = PostgreSQLEventStore(connection_pool, schema_name="events")
        await event_store.initialize_schema()

        # Create and store an event
        event = EventRecord(
            event_id=uuid4(),
            aggregate_id=user_id,
            aggregate_type="User",
            event_type="UserCreated",
            event_version=1,
            aggregate_version=1,
            event_data={"email": "user@example.com", "name": "John Doe"},
            metadata=EventMetadata(user_id=user_id, gdpr_compliant=True),
            created_at=datetime.now(timezone.utc),  # noqa: UP017 (as the spec writes it)
            stored_at=datetime.now(timezone.utc)  # noqa: UP017
        )

        stream_id = f"User-{user_id}"
        await event_store.append_events(stream_id, [event])
        # --- end of the example ---------------------------------------------------------
        stored = await event_store.read_stream(stream_id)
        assert [(e.event_id, e.event_type, e.event_data) for e in stored] == [
            (event.event_id, "UserCreated", {"email": "user@example.com", "name": "John Doe"})]
        assert stored[0].aggregate_id == str(user_id)
        assert stored[0].metadata.user_id == str(user_id)
        assert stored[0].stream_position == 1
        assert await event_store.get_events_for_aggregate(user_id, "User") == stored
        await event_store.close()
        return event_store

    store = run(example())
    # The caller's pool is the store's: it is still open for the service's other uses.
    with connection_pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM events.events").fetchone() == (1,)
    store.sync.close()
