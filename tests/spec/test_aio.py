"""evstore.aio beyond the examples: the loop stays free, cancellation leaves nothing half-written.

The lag probe measures how late a 1 ms sleep wakes while appends and reads run;
appends blocked for a second inside PostgreSQL (a lock held by another
connection) make a facade that waited on the loop visible as a lag of a
second, far above the generous bound asserted. No figure here is a speed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from evstore.core.reader.checkpoints import CheckpointStore

from evstore.aio import (
    ANY,
    EventRecord,
    EventStreamReader,
    PostgreSQLEventStore,
    StreamConfig,
    StreamReadMode,
)

from .conftest import run

LAG_BOUND = 0.5  # seconds: generous for a loaded 2-core machine; a blocking call costs >= HOLD
HOLD = 1.5  # seconds the stream's row stays locked


def events(n: int, start: int = 1, aggregate_id: str = "42") -> list[EventRecord]:
    return [EventRecord(aggregate_id, "User", "UserLoggedIn", {"n": i}, aggregate_version=i)
            for i in range(start, start + n)]


@contextmanager
def stream_locked(database_url: str, stream_id: str, seconds: float) -> Iterator[threading.Thread]:
    """Hold the stream's row lock from another connection for ``seconds`` (appends wait)."""
    ready = threading.Event()

    def hold() -> None:
        with psycopg.connect(database_url) as conn:
            conn.execute("SELECT 1 FROM events.streams WHERE stream_id = %s FOR UPDATE",
                         [stream_id])
            ready.set()
            time.sleep(seconds)
            conn.commit()

    thread = threading.Thread(target=hold)
    thread.start()
    assert ready.wait(10)
    try:
        yield thread
    finally:
        thread.join()


async def probe(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - started - 0.001)


def test_store_calls_never_block_the_loop(event_store: PostgreSQLEventStore,
                                          database_url: str) -> None:
    store = event_store
    store.sync.append_events("User-locked", events(1))
    store.sync.append_events("User-read", events(200))

    async def scenario() -> tuple[list[float], list[float]]:
        lags: list[float] = []
        stop = asyncio.Event()
        probing = asyncio.create_task(probe(stop, lags))
        blocked: list[float] = []

        async def locked_stream_append() -> None:
            started = time.perf_counter()
            await store.append_events("User-locked", [
                EventRecord("42", "User", "UserLoggedIn", {})], expected_version=ANY)
            blocked.append(time.perf_counter() - started)

        async def worker(i: int) -> None:
            for n in range(15):
                await store.append_events(f"User-w{i}-{n}", events(1, aggregate_id=f"w{i}-{n}"))
                assert len(await store.read_stream("User-read")) == 200

        with stream_locked(database_url, "User-locked", HOLD):
            await asyncio.gather(*(locked_stream_append() for _ in range(3)),
                                 *(worker(i) for i in range(5)))
        stop.set()
        await probing
        return lags, blocked

    lags, blocked = run(scenario())
    assert lags and max(lags) < LAG_BOUND, f"the loop was blocked {max(lags) * 1000:.0f} ms"
    assert len(lags) > 50  # the probe ran throughout
    assert len(blocked) == 3 and min(blocked) >= HOLD * 0.9  # the appends did wait in PostgreSQL
    assert event_store.sync.get_stream_version("User-locked") == 4


def test_a_cancelled_append_is_whole_or_absent(event_store: PostgreSQLEventStore,
                                               database_url: str) -> None:
    store = event_store
    store.sync.append_events("User-c", events(1))

    async def scenario() -> tuple[int, int]:
        batch = [EventRecord("42", "User", "UserLoggedIn", {"i": i}) for i in range(50)]
        with stream_locked(database_url, "User-c", HOLD):
            task = asyncio.create_task(store.append_events("User-c", batch, expected_version=ANY))
            await asyncio.sleep(0.2)  # the append runs, waiting for the lock in PostgreSQL
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The cancellation reached us once the append had settled: whole.
            at_cancel = await store.get_stream_version("User-c")
        await asyncio.sleep(0.3)
        return at_cancel, await store.get_stream_version("User-c")

    at_cancel, later = run(scenario())
    assert at_cancel == later == 51
    assert [e.event_data["i"] for e in event_store.sync.read_stream("User-c", from_version=2)] == list(
        range(50))


def test_a_cancelled_call_that_had_not_started_never_runs(connection_pool: Any,
                                                         database_url: str) -> None:
    store = PostgreSQLEventStore(connection_pool, schema_name="events", max_workers=1)
    store.sync.append_events("User-q", events(1))

    async def scenario() -> int:
        with stream_locked(database_url, "User-q", HOLD / 2):
            first = asyncio.create_task(store.append_events(
                "User-q", [EventRecord("42", "User", "UserLoggedIn", {})], expected_version=ANY))
            await asyncio.sleep(0.1)  # the only thread is busy with the first append
            queued = asyncio.create_task(store.append_events("User-q", events(5, start=2)))
            await asyncio.sleep(0.05)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            await first
        version = await store.get_stream_version("User-q")
        await store.close()
        return version

    assert run(scenario()) == 2  # the queued append of 5 events never ran


def test_a_streaming_reader_task_cancelled_saves_and_leaves(event_store: PostgreSQLEventStore) -> None:
    handled: list[str] = []
    config = StreamConfig(consumer_group="analytics", read_mode=StreamReadMode.STREAMING,
                          batch_size=10, event_handler=lambda e: handled.append(e.stream_id))
    reader = EventStreamReader(event_store, config)

    async def scenario() -> None:
        task = asyncio.create_task(reader.process_stream())
        while not reader.sync.running.is_set():
            await asyncio.sleep(0.01)
        for i in range(7):
            await event_store.append_events(f"User-s{i}", events(1, aggregate_id=f"s{i}"))
        while len(handled) < 7:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert not reader.sync.running.is_set()
    shards = CheckpointStore(event_store.sync).shards("analytics", "analytics")
    assert shards and not any(s.leased for s in shards)  # released at once, not left to lapse
    assert sum(s.events_processed for s in shards) == 7  # the checkpoint holds all it handled
    assert reader.metrics().events_processed == 7


def test_iterators_page_and_close_waits_for_calls_in_flight(connection_pool: Any) -> None:
    store = PostgreSQLEventStore(connection_pool, schema_name="events", max_workers=2)
    store.sync.append_events("User-i", events(25))

    async def scenario() -> tuple[list[int], list[int], int]:
        forward = [e.stream_position async for e in store.iter_stream("User-i", page_size=10)]
        backward = [e.stream_position async for e in store.iter_stream("User-i", page_size=10,
                                                                        backwards=True)]
        appends = [asyncio.create_task(store.append_events(f"User-j{i}", events(1)))
                   for i in range(6)]
        await asyncio.sleep(0)  # submitted: two run, four wait in the queue
        await store.close()  # every one of them ran before the pool of threads went
        results = await asyncio.gather(*appends, return_exceptions=True)
        done = sum(1 for r in results if not isinstance(r, BaseException))
        with pytest.raises(RuntimeError, match="closed"):
            await store.read_stream("User-i")
        return forward, backward, done

    forward, backward, done = run(scenario())
    assert forward == list(range(1, 26)) and backward == list(range(25, 0, -1))
    assert done == 6


def test_services_wrap_the_core_and_take_coroutine_handlers(event_store: PostgreSQLEventStore,
                                                             tmp_path: Any) -> None:
    from evstore.aio import ArchivalPolicy, EventArchiver

    for i in range(4):
        event_store.sync.append_events(f"User-h{i}", events(1, aggregate_id=f"h{i}"))
    seen: list[str] = []

    async def handler(event: EventRecord) -> None:  # runs on the caller's loop
        await asyncio.sleep(0)
        seen.append(event.stream_id or "")

    async def scenario() -> tuple[Any, Any]:
        reader = EventStreamReader(event_store, StreamConfig(
            "coro", read_mode=StreamReadMode.BATCH, event_handler=handler))
        metrics = await reader.process_stream()
        preview = await EventArchiver(event_store).preview(ArchivalPolicy(
            policy_name="month-old", strategy="time_based", retention_days=30,
            target_url=tmp_path.as_uri()))
        return metrics, preview

    metrics, preview = run(scenario())
    assert sorted(seen) == [f"User-h{i}" for i in range(4)] and metrics.events_processed == 4
    assert (preview.policy, preview.events) == ("month-old", 0)  # nothing is a month old
