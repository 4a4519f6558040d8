"""The spec's "Stream Processing" example, as written (Usage Examples).

A STREAMING reader handles the events appended after it started, until it is
stopped: the test appends those events and stops the reader once they were
handled (the example leaves both to the service around it).
"""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from evstore.aio import (
    EventRecord,
    EventStreamReader,
    PostgreSQLEventStore,
    StreamConfig,
    StreamReadMode,
)

from .conftest import run


def user_events(kind: str, n: int) -> list[tuple[str, list[EventRecord]]]:
    out = []
    for _ in range(n):
        user_id = uuid4()
        out.append((f"User-{user_id}", [EventRecord(user_id, "User", kind, {}, aggregate_version=1)]))
    return out


def test_stream_processing(event_store: PostgreSQLEventStore,
                           capsys: pytest.CaptureFixture[str]) -> None:
    stream_reader: EventStreamReader | None = None

    async def service_around_it() -> None:
        """Appends while the reader streams, then stops it once it handled them."""
        while stream_reader is None or not stream_reader.sync.running.is_set():
            await asyncio.sleep(0.01)
        for stream_id, events in (user_events("UserCreated", 3) + user_events("UserLoggedIn", 2)
                                  + user_events("UserUpdated", 2)):
            await event_store.append_events(stream_id, events)
        while stream_reader.metrics().processed < 5:
            await asyncio.sleep(0.01)
        stream_reader.stop()

    async def example() -> None:
        nonlocal stream_reader
        # Appended before the reader starts: a STREAMING reader never sees them.
        for stream_id, events in user_events("UserCreated", 2):
            await event_store.append_events(stream_id, events)
        around = asyncio.create_task(service_around_it())
        # --- the spec's example ---------------------------------------------------------
        # Configure stream reader
        config = StreamConfig(
            consumer_group="user-analytics",
            read_mode=StreamReadMode.STREAMING,
            batch_size=50,
            event_types=["UserCreated", "UserUpdated"],
            event_handler=lambda event: print(f"Processing: {event.event_type}")
        )

        # Start stream processing
        stream_reader = EventStreamReader(event_store, config)
        metrics = await stream_reader.process_stream()

        print(f"Processed {metrics.events_processed} events")
        print(f"Rate: {metrics.processing_rate_per_second} events/sec")
        # --- end of the example ---------------------------------------------------------
        await around

    run(example())
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith(("Processing:", "Processed", "Rate:"))]
    assert sorted(lines[:5]) == ["Processing: UserCreated"] * 3 + ["Processing: UserUpdated"] * 2
    assert lines[5] == "Processed 5 events"
    rate = float(lines[6].removeprefix("Rate: ").removesuffix(" events/sec"))
    assert rate > 0
    assert len(lines) == 7
