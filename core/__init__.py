"""evstore's synchronous storage core: no Dramatiq, Redis or APScheduler here."""

from __future__ import annotations

from .config import Settings, load_settings
from .errors import (
    CodecError,
    ConcurrencyError,
    ConfigurationError,
    DuplicateEventError,
    EventStoreError,
    EventValidationError,
    IntegrityError,
    SchemaNotInitializedError,
    StoreUnavailableError,
    UnknownEventTypeError,
)
from .persistence import (
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
from .postgres import PostgreSQLEventStore

__all__ = [
    "ANY",
    "NO_STREAM",
    "START",
    "AppendResult",
    "CodecError",
    "ConcurrencyError",
    "ConfigurationError",
    "DuplicateEventError",
    "EventMetadata",
    "EventRecord",
    "EventStore",
    "EventStoreError",
    "EventValidationError",
    "HealthReport",
    "IntegrityError",
    "PartitionInfo",
    "Position",
    "PostgreSQLEventStore",
    "ReadAllPage",
    "SchemaNotInitializedError",
    "Settings",
    "StoreMetrics",
    "StoreUnavailableError",
    "StreamState",
    "UnknownEventTypeError",
    "VerifyReport",
    "load_settings",
]
