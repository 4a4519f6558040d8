"""The awaitable event store: the spec's ``await event_store.append_events(...)``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import date
from typing import Any

from evstore.core.store.persistence import (
    AppendResult,
    EventRecord,
    ExpectedVersion,
    HealthReport,
    PartitionInfo,
    Position,
    ReadAllPage,
    StoreMetrics,
    VerifyReport,
)
from evstore.core.store.postgres import PostgreSQLEventStore as SyncEventStore

from ._calls import Calls

__all__ = ["PostgreSQLEventStore", "SyncEventStore", "sync_store"]


class PostgreSQLEventStore:
    """The synchronous store's methods, awaitable; every call runs on the same core.

    Built like the synchronous store (``PostgreSQLEventStore(pool, schema_name="events")``,
    a URL, or nothing: the environment), or around one (``PostgreSQLEventStore(sync_store)``).
    ``store.sync`` is the synchronous store, for the services that take one.
    ``max_workers`` bounds the threads that run calls (default: the connection
    pool's size, so a call never waits for a connection while holding a thread).
    """

    def __init__(self, store: SyncEventStore | Any = None, *, max_workers: int | None = None,
                 **kwargs: Any) -> None:
        self.sync: SyncEventStore = (
            store if isinstance(store, SyncEventStore) else SyncEventStore(store, **kwargs))
        self._owns_store = not isinstance(store, SyncEventStore)
        self.calls = Calls(max_workers or max(1, self.sync.pool.max_size))

    @classmethod
    def from_env(cls, **overrides: Any) -> PostgreSQLEventStore:
        return cls(SyncEventStore.from_env(**overrides))

    @property
    def schema(self) -> str:
        return str(self.sync.schema)

    def __repr__(self) -> str:
        return f"<evstore.aio {self.sync!r}>"

    async def __aenter__(self) -> PostgreSQLEventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Wait for the calls in flight, then release the threads (and the store, if made here)."""
        # Shut the threads down (waiting for the calls in flight) off the loop.
        await asyncio.get_running_loop().run_in_executor(None, self.calls.close)
        if self._owns_store:
            self.sync.close()

    async def run(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Any synchronous call (a core service's method, say) on this store's threads."""
        return await self.calls.run(fn, *args, **kwargs)

    # -- the store's methods, awaitable ---------------------------------------------

    async def initialize_schema(self, months_ahead: int = 3) -> None:
        await self.calls.run(self.sync.initialize_schema, months_ahead)

    async def schema_version(self) -> int:
        return await self.calls.run(self.sync.schema_version)

    async def append_events(self, stream_id: str, events: Sequence[EventRecord],
                            expected_version: ExpectedVersion | None = None) -> AppendResult:
        return await self.calls.run(self.sync.append_events, stream_id, list(events),
                                    expected_version)

    async def validate_events(self, stream_id: str, events: Sequence[EventRecord]) -> None:
        await self.calls.run(self.sync.validate_events, stream_id, list(events))

    async def get_stream_version(self, stream_id: str) -> int:
        return await self.calls.run(self.sync.get_stream_version, stream_id)

    async def read_stream(self, stream_id: str, from_version: int | None = None,
                          max_count: int | None = None, backwards: bool = False) -> list[EventRecord]:
        return await self.calls.run(self.sync.read_stream, stream_id, from_version, max_count,
                                    backwards)

    async def iter_stream(self, stream_id: str, from_version: int | None = None,
                          page_size: int | None = None,
                          backwards: bool = False) -> AsyncIterator[EventRecord]:
        """One stream's events, a page per thread call: any length in bounded memory."""
        size = page_size or self.sync.settings.batch_size
        position = from_version
        while True:
            page = await self.calls.run(self.sync.read_stream, stream_id, position, size,
                                        backwards)
            for event in page:
                yield event
            if len(page) < size:
                return
            last = page[-1].stream_position
            assert last is not None
            position = last - 1 if backwards else last + 1
            if position < 0:
                return

    async def get_events_for_aggregate(self, aggregate_id: Any, aggregate_type: str | None = None,
                                       from_version: int = 1) -> list[EventRecord]:
        return await self.calls.run(self.sync.get_events_for_aggregate, aggregate_id,
                                    aggregate_type, from_version)

    async def read_all(self, after: Position | str | None = None, limit: int = 1000,
                       event_types: Sequence[str] | None = None,
                       aggregate_types: Sequence[str] | None = None,
                       check_types: bool = True) -> ReadAllPage:
        return await self.calls.run(self.sync.read_all, after, limit, event_types,
                                    aggregate_types, check_types)

    async def iter_all(self, after: Position | None = None, batch_size: int | None = None,
                       **filters: Any) -> AsyncIterator[EventRecord]:
        """Every event after a checkpoint up to the current head, a page per thread call."""
        limit = batch_size or self.sync.settings.batch_size
        while True:
            page = await self.calls.run(self.sync.read_all, after, limit, **filters)
            for event in page.events:
                yield event
            after = page.checkpoint
            if page.at_end:
                return

    async def known_event_types(self) -> list[str]:
        return await self.calls.run(self.sync.known_event_types)

    async def check_event_types(self, types: Sequence[str]) -> None:
        await self.calls.run(self.sync.check_event_types, types)

    async def verify(self, from_position: int | None = None, to_position: int | None = None,
                     **kwargs: Any) -> VerifyReport:
        return await self.calls.run(self.sync.verify, from_position, to_position, **kwargs)

    async def health(self) -> HealthReport:
        return await self.calls.run(self.sync.health)

    async def metrics(self, exact: bool = False) -> StoreMetrics:
        return await self.calls.run(self.sync.metrics, exact)

    async def list_partitions(self, exact: bool = False) -> list[PartitionInfo]:
        return await self.calls.run(self.sync.list_partitions, exact)

    async def create_partitions_ahead(self, months_ahead: int = 3) -> list[date]:
        return await self.calls.run(self.sync.create_partitions_ahead, months_ahead)


def sync_store(store: PostgreSQLEventStore | SyncEventStore) -> SyncEventStore:
    """The synchronous store behind an aio store (or the store itself)."""
    return store.sync if isinstance(store, PostgreSQLEventStore) else store
