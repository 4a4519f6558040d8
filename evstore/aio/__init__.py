"""evstore for asyncio services: the spec's API as written, awaitable.

    from evstore.aio import PostgreSQLEventStore, EventRecord, EventMetadata

    event_store = PostgreSQLEventStore(connection_pool, schema_name="events")
    await event_store.initialize_schema()
    await event_store.append_events(f"User-{user_id}", [event])

The same synchronous core runs every call, in a thread of a pool bounded by
the store's connection pool (see :mod:`evstore.aio._calls`: why threads, and
what a cancelled call leaves behind). The records, configurations and errors
are the core's own classes, re-exported here.
"""

from __future__ import annotations

from typing import Any

from evstore.core import (
    ANY,
    NO_STREAM,
    START,
    Aggregate,
    AppendResult,
    ArchivalPolicy,
    ArchivalStrategy,
    ConcurrencyError,
    EventMetadata,
    EventRecord,
    EventStoreError,
    Position,
    ReadAllPage,
    SnapshotConfig,
    SnapshotStrategy,
    StreamConfig,
    StreamReadMode,
)
from evstore.core.reader.streams import ReaderMetrics

from .services import EventArchiver, EventQueryService, EventReplayService, EventSnapshot, EventStreamReader
from .store import PostgreSQLEventStore

__all__ = [
    "ANY",
    "NO_STREAM",
    "START",
    "Aggregate",
    "AppendResult",
    "ArchivalPolicy",
    "ArchivalStrategy",
    "ConcurrencyError",
    "EventArchiver",
    "EventMetadata",
    "EventQueryService",
    "EventRecord",
    "EventReplayService",
    "EventSearchCriteria",
    "EventSnapshot",
    "EventStoreError",
    "EventStreamReader",
    "Position",
    "PostgreSQLEventStore",
    "ReadAllPage",
    "ReaderMetrics",
    "ReplayConfig",
    "ReplayResult",
    "SnapshotConfig",
    "SnapshotStrategy",
    "StreamConfig",
    "StreamReadMode",
]

# Names of optional parts, imported on first use: replay needs the workers extra.
_LAZY = {
    "ReplayConfig": "evstore.workers.replay",
    "ReplayResult": "evstore.workers.replay",
    "EventSearchCriteria": "evstore.aio.query",  # the core's, taking uuid.UUID ids
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
