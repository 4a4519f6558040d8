"""The reads of a replay job: which events it covers, split by stream, and one batch's events.

A replay's selection is fixed when it is planned: it holds the rows of the
transactions visible in the planning snapshot (committed by then), so a
transaction still running then never adds an event to the job, or to one of
its batches, when it commits later. Batches are sets of whole streams: every event of a stream that the
selection holds is in one batch, so a stream's events are delivered in stream
order even though batches run in parallel.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg

from ..db import Database
from ..errors import InvalidJobError
from ..store.persistence import EventRecord, EventStore
from ..store.reads import COLUMNS

# The selection's fields that filter events, in the order their fragments are joined.
_FILTERS = ("from_position", "to_position", "from_time", "to_time", "aggregate_ids",
            "aggregate_types", "event_types")


@dataclass(frozen=True)
class ReplaySelection:
    """Which events a replay covers. Positions are inclusive; times are [from, to)."""

    from_position: int | None = None
    to_position: int | None = None
    from_time: datetime | None = None
    to_time: datetime | None = None
    aggregate_ids: tuple[str, ...] | None = None
    aggregate_types: tuple[str, ...] | None = None
    event_types: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("from_position", "to_position"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise InvalidJobError(f"{name} must be a global position >= 0 (got {value!r})")
        if (self.from_position is not None and self.to_position is not None
                and self.from_position > self.to_position):
            raise InvalidJobError(
                f"inverted range: from_position {self.from_position} is after "
                f"to_position {self.to_position}"
            )
        for name in ("from_time", "to_time"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise InvalidJobError(f"{name} must be a timezone-aware datetime (got {value!r})")
        if self.from_time is not None and self.to_time is not None and self.from_time >= self.to_time:
            raise InvalidJobError(
                f"empty or inverted time range: from_time {self.from_time.isoformat()} is not "
                f"before to_time {self.to_time.isoformat()}"
            )
        for name in ("aggregate_ids", "aggregate_types", "event_types"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, str) or not value):
                raise InvalidJobError(f"{name} must be a non-empty list of names (or None for all)")

    def where(self, db: Database) -> tuple[str, dict[str, Any]]:
        """A conjunction of the fixed ``filter_*`` fragments of replay.sql, and their parameters."""
        parts: list[str] = []
        args: dict[str, Any] = {}
        for name in _FILTERS:
            value = getattr(self, name)
            if value is not None:
                parts.append(db.sql("replay", f"filter_{name}"))
                args[name] = list(value) if isinstance(value, tuple) else value
        return " ".join(parts), args

    def describe(self) -> str:
        shown = [f"{k}={v!r}" for k, v in asdict(self).items() if v is not None]
        return ", ".join(shown) or "every event"

    def to_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[key] = value
        return out

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ReplaySelection:
        values: dict[str, Any] = {}
        for key in cls.__dataclass_fields__:
            value = params.get(key)
            if value is not None and key.endswith("_time"):
                value = datetime.fromisoformat(value)
            elif isinstance(value, list):
                value = tuple(value)
            values[key] = value
        return cls(**values)


@dataclass(frozen=True)
class StreamSpan:
    stream_id: str
    events: int
    first_position: int
    last_position: int


def plan_streams(store: EventStore, selection: ReplaySelection) -> tuple[str, list[StreamSpan]]:
    """The snapshot that fixes the selection (as text), and every stream it touches."""
    db = store.db
    filters, args = selection.where(db)
    # Planning reads in one snapshot: the one whose text fixes the selection.
    with db.connection() as conn, db.read_only_snapshot(conn):
        row = conn.execute(db.sql("replay", "snapshot")).fetchone()
        assert row is not None
        (snapshot_value,) = row
        snapshot = str(snapshot_value)
        rows = conn.execute(db.sql("replay", "plan_streams", filters=filters),
                            {**args, "snapshot": snapshot}).fetchall()
    return snapshot, [StreamSpan(stream_id, int(events), int(first), int(last))
                      for stream_id, events, first, last in rows]


def pack_streams(spans: Sequence[StreamSpan], batch_size: int) -> list[list[StreamSpan]]:
    """Whole streams into batches of about ``batch_size`` events, in first-event order.

    A stream with more events than ``batch_size`` gets a batch of its own.
    """
    if batch_size < 1:
        raise InvalidJobError(f"batch_size must be >= 1 (got {batch_size})")
    batches: list[list[StreamSpan]] = []
    current: list[StreamSpan] = []
    count = 0
    for span in spans:
        if current and count + span.events > batch_size:
            batches.append(current)
            current, count = [], 0
        current.append(span)
        count += span.events
    if current:
        batches.append(current)
    return batches


def iter_batch_events(
    store: EventStore, conn: psycopg.Connection, selection: ReplaySelection, snapshot: str,
    streams: Sequence[str], fetch_size: int = 2000,
) -> Iterator[EventRecord]:
    """A batch's events in global order, through a server-side cursor in ``conn``'s transaction."""
    db = store.db
    filters, args = selection.where(db)
    text = db.sql("replay", "batch_events", filters=filters, columns=COLUMNS)
    with conn.cursor(name="evstore_replay_batch") as cur:
        cur.itersize = fetch_size
        cur.execute(text, {**args, "snapshot": snapshot, "streams": list(streams)})
        for row in cur:
            yield store.decode_row(row)
