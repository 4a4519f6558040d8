"""The storage contract: the records evstore stores and the abstract store.

Everything a caller hands to or gets back from an event store is defined here;
:mod:`evstore.core.store.postgres` implements :class:`EventStore` on PostgreSQL and
imports only this module's types.
"""

from __future__ import annotations

import enum
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Settings
    from ..db import Database

_METADATA_FIELDS = ("user_id", "correlation_id", "causation_id", "gdpr_compliant", "source")


@dataclass(frozen=True)
class EventMetadata:
    """Who caused an event, in which flow, and whether it carries personal data."""

    user_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    gdpr_compliant: bool = True
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        for name in _METADATA_FIELDS:
            value = getattr(self, name)
            if value is not None:
                # Ids given as uuid.UUID (as the spec's examples do) are stored as their text.
                out[name] = str(value) if isinstance(value, uuid.UUID) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> EventMetadata:
        data = dict(data or {})
        known = {name: data.pop(name) for name in _METADATA_FIELDS if name in data}
        return cls(**known, extra=data)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EventRecord:
    """One event. Producers fill the first block; the store fills the rest on append.

    ``aggregate_version`` may be left at 0: the store then assigns the stream
    position. When the caller sets it, the versions of one append must be
    consecutive, and (without an explicit ``expected_version``) the first one
    decides the version the stream is expected to be at.
    """

    aggregate_id: str
    aggregate_type: str
    event_type: str
    event_data: dict[str, Any]
    aggregate_version: int = 0
    event_version: int = 1
    metadata: EventMetadata = field(default_factory=EventMetadata)
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    created_at: datetime = field(default_factory=utcnow)
    # Assigned by the store:
    stream_id: str | None = None
    stream_position: int | None = None
    global_position: int | None = None
    transaction_id: int | None = None
    stored_at: datetime | None = None
    status: str = "active"
    checksum: str | None = None
    compression: str = "none"
    encryption: str = "none"
    original_size: int | None = None
    stored_size: int | None = None

    def __post_init__(self) -> None:
        # An aggregate id given as uuid.UUID (as the spec's examples do) is its canonical text.
        if type(self.aggregate_id) is not str and isinstance(self.aggregate_id, uuid.UUID):
            object.__setattr__(self, "aggregate_id", str(self.aggregate_id))

    @property
    def position(self) -> Position:
        """This event's place in the global order (a checkpoint that includes it)."""
        if self.transaction_id is None or self.global_position is None:
            raise ValueError("the event has not been stored yet")
        return Position(self.transaction_id, self.global_position)


@dataclass(frozen=True, order=True)
class Position:
    """A point in the global order: events are ordered by (transaction, position).

    Store it as a checkpoint (``str(pos)`` gives ``"<transaction>:<position>"``,
    :meth:`parse` reads it back) and pass it to ``read_all(after=...)``.
    """

    transaction_id: int
    global_position: int

    def __post_init__(self) -> None:
        for name in ("transaction_id", "global_position"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
                raise ValueError(f"checkpoint {name} must be an integer from 0 to 2**63-1 (got {value!r})")

    def __str__(self) -> str:
        return f"{self.transaction_id}:{self.global_position}"

    @classmethod
    def parse(cls, text: str) -> Position:
        try:
            tx, _, pos = text.strip().partition(":")
            numbers = int(tx), int(pos)
        except ValueError:
            raise ValueError(
                f"invalid checkpoint {text!r}: expected '<transaction>:<position>', e.g. '1234:56'"
            ) from None
        try:
            return cls(*numbers)
        except ValueError as exc:
            raise ValueError(f"invalid checkpoint {text!r}: {exc}") from None


START = Position(0, 0)


class StreamState(enum.Enum):
    """Expected versions that are not a number."""

    ANY = "any"
    NO_STREAM = "no_stream"


ANY = StreamState.ANY
NO_STREAM = StreamState.NO_STREAM
ExpectedVersion = int | StreamState


@dataclass(frozen=True)
class AppendResult:
    stream_id: str
    version: int
    global_positions: list[int]
    transaction_id: int
    # True when the same events (same ids) were already stored: an idempotent retry.
    deduplicated: bool = False

    @property
    def position(self) -> Position:
        return Position(self.transaction_id, self.global_positions[-1])


@dataclass(frozen=True)
class ReadAllPage:
    events: list[EventRecord]
    checkpoint: Position
    # True when the page reached the head of what is safely readable now.
    at_end: bool
    # Where the page was read ("primary" or "replica": DATABASE_READ_URL) and,
    # on a replica, how far it was behind the primary (docs/operations.md).
    source: str = "primary"
    lag_bytes: int = 0
    lag_seconds: float = 0.0

    def __iter__(self) -> Iterator[EventRecord]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


@dataclass(frozen=True)
class PartitionInfo:
    name: str
    month: str  # YYYY-MM
    range_start: datetime
    range_end: datetime
    row_count: int
    total_bytes: int


@dataclass(frozen=True)
class ChecksumMismatch:
    event_id: uuid.UUID
    global_position: int
    stream_id: str
    stored: str
    computed: str


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    mismatches: list[ChecksumMismatch]
    # Events still under a version-1 (unkeyed) checksum, and those re-signed by --upgrade.
    legacy: int = 0
    upgraded: int = 0

    @property
    def ok(self) -> bool:
        return not self.mismatches


@dataclass(frozen=True)
class HealthCheck:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class HealthReport:
    checks: list[HealthCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass(frozen=True)
class StoreMetrics:
    events: int
    streams: int
    partitions: int
    total_bytes: int
    # None when estimated (exact=False): only a full scan knows them.
    original_payload_bytes: int | None
    stored_payload_bytes: int | None
    compressed_events: int | None
    events_by_type: dict[str, int]
    # False: counts are the catalog's estimates (as of the last ANALYZE).
    exact: bool = True

    @property
    def compression_ratio(self) -> float:
        if not self.stored_payload_bytes or self.original_payload_bytes is None:
            return 1.0
        return self.original_payload_bytes / self.stored_payload_bytes


class EventStore(ABC):
    """The synchronous event store contract.

    The features beside the store (readers, snapshots, archives, jobs,
    privacy) take an ``EventStore`` and reach their own tables through its
    ``db`` (the database handle), never through the concrete class.
    """

    db: Database
    settings: Settings

    @abstractmethod
    def initialize_schema(self) -> None:
        """Create or upgrade the tables; idempotent, safe from several processes."""

    @abstractmethod
    def append_events(
        self,
        stream_id: str,
        events: Sequence[EventRecord],
        expected_version: ExpectedVersion | None = None,
    ) -> AppendResult:
        """Append atomically (all or none), checking the stream's version."""

    @abstractmethod
    def read_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        max_count: int | None = None,
        backwards: bool = False,
    ) -> list[EventRecord]:
        """Events of one stream in stream order (or reverse)."""

    @abstractmethod
    def get_stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 when it does not exist."""

    @abstractmethod
    def get_events_for_aggregate(
        self, aggregate_id: str, aggregate_type: str | None = None, from_version: int = 1
    ) -> list[EventRecord]:
        """An aggregate's events in version order."""

    @abstractmethod
    def read_all(
        self,
        after: Position | None = None,
        limit: int = 1000,
        event_types: Sequence[str] | None = None,
        aggregate_types: Sequence[str] | None = None,
        check_types: bool = True,
    ) -> ReadAllPage:
        """One page of the global order after a checkpoint."""

    @abstractmethod
    def verify(
        self, from_position: int | None = None, to_position: int | None = None
    ) -> VerifyReport:
        """Recompute the checksums of a range of events."""

    @abstractmethod
    def decode_row(self, row: tuple[Any, ...], verify: bool | None = None) -> EventRecord:
        """An EventRecord from a row of the events table (the store's column order)."""

    @abstractmethod
    def check_event_types(self, types: Sequence[str]) -> None:
        """Raise UnknownEventTypeError when a name was never appended."""

    @abstractmethod
    def list_partitions(self, exact: bool = False) -> list[PartitionInfo]:
        """The month partitions of the events table, oldest first."""

    @abstractmethod
    def create_partitions_ahead(self, months_ahead: int = 3, now: datetime | None = None) -> list[date]:
        """The current month's partition and ``months_ahead`` after it."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
