"""evstore's synchronous storage core: no Dramatiq, Redis or APScheduler here."""

from __future__ import annotations

from .archive import ArchivalPolicy, ArchivalStrategy, EventArchiver
from .config import Settings, load_settings
from .errors import (
    CodecError,
    ConcurrencyError,
    ConfigurationError,
    DuplicateEventError,
    EventStoreError,
    EventValidationError,
    IntegrityError,
    PermissionDeniedError,
    ReadLimitError,
    SchemaNotInitializedError,
    StoreUnavailableError,
    UnknownEventTypeError,
)

# Every store logs the reads that return personal data (issue 11, docs/privacy.md).
from .privacy import access_observer as _access_observer  # noqa: F401
from .reader.reader import EventStreamReader
from .reader.streams import StreamConfig, StreamReadMode
from .snapshots.aggregate import Aggregate
from .snapshots.policy import SnapshotConfig, SnapshotStrategy
from .snapshots.store import EventSnapshot, SnapshotStore
from .store.persistence import (
    ANY,
    NO_STREAM,
    START,
    AppendResult,
    EventMetadata,
    EventRecord,
    EventStore,
    HealthReport,
    PartitionInfo,
    Position,
    ReadAllPage,
    StoreMetrics,
    StreamState,
    VerifyReport,
)
from .store.postgres import PostgreSQLEventStore

__all__ = [
    "ANY",
    "NO_STREAM",
    "START",
    "Aggregate",
    "AppendResult",
    "ArchivalPolicy",
    "ArchivalStrategy",
    "CodecError",
    "ConcurrencyError",
    "ConfigurationError",
    "DuplicateEventError",
    "EventArchiver",
    "EventMetadata",
    "EventRecord",
    "EventSnapshot",
    "EventStore",
    "EventStoreError",
    "EventStreamReader",
    "EventValidationError",
    "HealthReport",
    "IntegrityError",
    "PartitionInfo",
    "PermissionDeniedError",
    "Position",
    "PostgreSQLEventStore",
    "ReadAllPage",
    "ReadLimitError",
    "SchemaNotInitializedError",
    "Settings",
    "SnapshotConfig",
    "SnapshotStore",
    "SnapshotStrategy",
    "StoreMetrics",
    "StoreUnavailableError",
    "StreamConfig",
    "StreamReadMode",
    "StreamState",
    "UnknownEventTypeError",
    "VerifyReport",
    "load_settings",
]
