"""The spec's services, awaitable: snapshots, replay, archiver, queries, stream reader.

Each wraps the synchronous service of the core (one implementation) and runs
its calls on the store's bounded threads (:mod:`._calls`). They take the aio
store (or a synchronous one) as the spec's examples do.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import TYPE_CHECKING, Any

from evstore.core.archive import ArchivalPolicy
from evstore.core.archive import EventArchiver as SyncArchiver
from evstore.core.reader.reader import EventStreamReader as SyncReader
from evstore.core.reader.streams import ReaderMetrics, StreamConfig, StreamReadMode
from evstore.core.snapshots.policy import SnapshotConfig
from evstore.core.snapshots.store import EventSnapshot as SnapshotRecord
from evstore.core.snapshots.store import SnapshotStore

from ._calls import Calls
from .store import PostgreSQLEventStore, SyncEventStore, sync_store

if TYPE_CHECKING:
    from evstore.workers.replay import ReplayConfig, ReplayResult


def _calls_of(store: PostgreSQLEventStore | SyncEventStore) -> Calls:
    if isinstance(store, PostgreSQLEventStore):
        return store.calls
    # A synchronous store given directly: threads of its own, bounded by its pool.
    calls: Calls | None = getattr(store, "_evstore_aio_calls", None)
    if calls is None:
        calls = Calls(max(1, store.pool.max_size))
        store._evstore_aio_calls = calls
    return calls


class _Wrapped:
    """Methods of ``self.sync`` not written out here, awaitable on the store's threads."""

    sync: Any
    calls: Calls

    def __getattr__(self, name: str) -> Any:
        if name in ("sync", "calls"):  # not set yet: no recursion through __getattr__
            raise AttributeError(name)
        attr = getattr(self.sync, name)
        if not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self.calls.run(attr, *args, **kwargs)

        call.__name__ = name
        return call


class EventSnapshot(_Wrapped):
    """``EventSnapshot(store, SnapshotConfig(...))``: load with snapshots, create them."""

    def __init__(self, store: PostgreSQLEventStore | SyncEventStore,
                 config: SnapshotConfig | None = None) -> None:
        self.sync = SnapshotStore(sync_store(store), config or SnapshotConfig())
        self.calls = _calls_of(store)

    async def load_aggregate_with_events(self, cls: type[Any], aggregate_id: Any,
                                         aggregate_type: str | None = None,
                                         **kwargs: Any) -> tuple[Any, int]:
        return await self.calls.run(self.sync.load_aggregate_with_events, cls, aggregate_id,
                                    aggregate_type, **kwargs)

    async def create_snapshot(self, aggregate: Any, aggregate_id: Any,
                              aggregate_type: str | None = None, version: int | None = None,
                              **kwargs: Any) -> SnapshotRecord | None:
        return await self.calls.run(self.sync.create_snapshot, aggregate, aggregate_id,
                                    aggregate_type, version, **kwargs)


class EventReplayService(_Wrapped):
    """``await replay_service.replay_events(config)``: the replay's result once it ended.

    Replays run on the worker processes (``evstore worker``), as with the
    synchronous service; awaiting polls the job's rows without holding a thread.
    """

    def __init__(self, store: PostgreSQLEventStore | SyncEventStore, broker: Any = None,
                 poll_interval: float = 0.25) -> None:
        from evstore.workers.replay import EventReplayService as SyncReplay

        self.sync = SyncReplay(sync_store(store), broker)
        self.calls = _calls_of(store)
        self.poll_interval = poll_interval

    @staticmethod
    def register_event_handler(event_type: Any, handler: Any = None, **kwargs: Any) -> Any:
        from evstore.workers.handlers import register_event_handler

        return register_event_handler(event_type, handler, **kwargs)

    async def start(self, config: ReplayConfig) -> int:
        """Plan and enqueue the replay; its job id."""
        return int(await self.calls.run(self.sync.start, config))

    async def replay_events(self, config: ReplayConfig, timeout: float | None = None) -> ReplayResult:
        """Start the replay and wait for its end; its ReplayResult (``successful_events``, ...)."""
        return await self.wait(await self.start(config), timeout)

    async def wait(self, job_id: int, timeout: float | None = None) -> ReplayResult:
        async with asyncio.timeout(timeout):
            while True:
                job = await self.calls.run(self.sync.engine.repo.get, job_id)
                if job.finished:
                    return await self.calls.run(self.sync.result, job_id)
                await asyncio.sleep(self.poll_interval)

    async def result(self, job_id: int) -> ReplayResult:
        return await self.calls.run(self.sync.result, job_id)


class EventArchiver(_Wrapped):
    """The archiver: previews, archives, restores and GDPR clean-ups, awaitable."""

    def __init__(self, store: PostgreSQLEventStore | SyncEventStore, workers: int = 2) -> None:
        self.sync = SyncArchiver(sync_store(store), workers)
        self.calls = _calls_of(store)

    def register_policy(self, policy: ArchivalPolicy) -> ArchivalPolicy:
        return self.sync.register_policy(policy)

    async def cleanup_gdpr_data(self, user_id: Any, anonymize: bool = True, **kwargs: Any) -> Any:
        return await self.calls.run(self.sync.cleanup_gdpr_data, str(user_id), anonymize=anonymize,
                                    **kwargs)


class EventQueryService(_Wrapped):
    """``result, metrics = await query_service.query_events(criteria)``, and the others."""

    def __init__(self, store: PostgreSQLEventStore | SyncEventStore, **kwargs: Any) -> None:
        from evstore.core.query import EventQueryService as SyncQuery

        self.sync = SyncQuery(sync_store(store), **kwargs)
        self.calls = _calls_of(store)

    async def query_events(self, criteria: Any, **kwargs: Any) -> tuple[Any, Any]:
        return await self.calls.run(self.sync.query_events, criteria, **kwargs)

    async def search_event_content(self, text: str, event_types: Any = None, **kwargs: Any) -> Any:
        return await self.calls.run(self.sync.search_event_content, text, event_types, **kwargs)


class EventStreamReader:
    """``metrics = await EventStreamReader(store, config).process_stream()``.

    The reader runs in a thread of its own (its loop and handlers block, and a
    live reader runs until stopped), never on the store's call threads. The
    handler is called from the reader's threads; a coroutine function is run on
    the caller's event loop and awaited there before the next event of its stream.
    ``process_stream()`` returns the metrics (``events_processed``,
    ``processing_rate_per_second``) when a batch or replay reader reaches the
    end, or a live one is stopped with :meth:`stop`. When its task is
    cancelled the reader is stopped, finishes the events in hand, saves its
    checkpoint and releases its shards before the cancellation goes on.
    """

    def __init__(self, store: PostgreSQLEventStore | SyncEventStore, config: StreamConfig) -> None:
        self.sync = SyncReader(sync_store(store), config)
        self.config = config

    def stop(self) -> None:
        """Ask the reader to finish what it holds, save and return (thread-safe, not awaited)."""
        self.sync.stop()

    def metrics(self) -> ReaderMetrics:
        return self.sync.metrics()

    async def process_stream(self, handler: Any = None) -> ReaderMetrics:
        loop = asyncio.get_running_loop()
        handler = handler or self.config.event_handler
        if handler is not None and asyncio.iscoroutinefunction(handler):
            handler = _on_loop(handler, loop)
        done: asyncio.Future[ReaderMetrics] = loop.create_future()

        def target() -> None:
            try:
                result = self.sync.process_stream(handler)
            except BaseException as exc:
                loop.call_soon_threadsafe(_set, done, None, exc)
            else:
                loop.call_soon_threadsafe(_set, done, result, None)

        threading.Thread(target=target, name=f"evstore-aio-reader-{self.sync.member_id}",
                         daemon=True).start()
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            self.sync.stop()
            while not done.done():  # the reader saves and leaves; then the cancellation goes on
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([done])
            if not done.cancelled():
                done.exception()
            raise


def _set(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _on_loop(fn: Any, loop: asyncio.AbstractEventLoop) -> Any:
    def handler(event: Any) -> None:
        asyncio.run_coroutine_threadsafe(fn(event), loop).result()

    return handler


__all__ = [
    "EventArchiver", "EventQueryService", "EventReplayService", "EventSnapshot",
    "EventStreamReader", "StreamReadMode",
]
