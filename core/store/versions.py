"""Before and after an append's statements: the expected version, and retries recognised.

``expected_version`` decides the version the stream must be at from the
caller's ``expected_version`` and the events' own ``aggregate_version``.
``deduplicated`` accepts a retry (the same events stored already, whatever
their ``created_at``) and refuses an event id used for something else.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from .. import checksums
from ..errors import DuplicateEventError, EventValidationError
from ..keys import KeyRing
from .persistence import ANY, NO_STREAM, AppendResult, EventRecord, ExpectedVersion, StreamState
from .prepare import Prepared, row_message, v1_checksum

# Expected versions (and aggregate versions) are below this bound.
VERSION_LIMIT = 2**62


class StreamHead(NamedTuple):
    """A row of ``stream_head``."""

    version: int
    aggregate_id: str
    aggregate_type: str


class StoredEvent(NamedTuple):
    """A row of ``stream_event_ids``: one of the batch's events stored already."""

    stream_position: int
    event_id: uuid.UUID
    checksum: str
    global_position: int
    transaction_id: int
    created_at: datetime


class Conflict(Exception):
    """The version check found the stream elsewhere than expected."""


class MissingMonthPartition(Exception):
    """The month partition of an event was dropped since it was cached (archival)."""


# -- before the database: the expected version --------------------------------


def expected_version(batch: Sequence[EventRecord], expected: ExpectedVersion | None) -> int | StreamState:
    """The version the stream must be at: an int, or ANY; refuses what disagrees.

    ``None`` follows the events: their first ``aggregate_version`` minus one
    when set, else ANY. ``NO_STREAM`` is 0. A set ``aggregate_version`` asks
    for an exact version, so it may not come with ANY, and must be the
    expected version plus one.
    """
    first = batch[0].aggregate_version
    if expected is None:
        return first - 1 if first else ANY
    if expected is ANY and first:
        raise EventValidationError(
            f"expected_version ANY with aggregate_version {first} set on the events: "
            "a set aggregate_version asks for an exact expected version; leave it 0 with ANY"
        )
    if isinstance(expected, StreamState):
        if expected is NO_STREAM and first not in (0, 1):
            raise EventValidationError(
                f"expected no stream, but the first event has aggregate_version {first}"
            )
        return 0 if expected is NO_STREAM else ANY
    if isinstance(expected, bool) or not isinstance(expected, int) or not 0 <= expected < VERSION_LIMIT:
        raise EventValidationError(
            f"expected_version must be an integer from 0 to 2**62-1, ANY or NO_STREAM "
            f"(got {expected!r})"
        )
    if first and first != expected + 1:
        raise EventValidationError(
            f"expected_version {expected} disagrees with the first event's "
            f"aggregate_version {first} (should be {expected + 1})"
        )
    return expected


def deduplicated(
    ring: KeyRing, stream_id: str, batch: list[Prepared], stored: list[StoredEvent],
    expected: int | None = None,
) -> AppendResult:
    """The same events are stored already: a retry. Accept it if they match.

    They match when every event is stored at the place it would take now
    with the same content. The time may differ: a producer that rebuilds an
    event on retry gives it a new ``created_at``; the stored one stands (the
    checksum is compared with the stored time), and the event is not stored twice.
    """
    by_id = {s.event_id: s for s in stored}
    first = stored[0]
    start = int(first.stream_position)
    for i, p in enumerate(batch):
        found = by_id.get(p.event.event_id)
        position = start + i
        if found is None or int(found.stream_position) != position:
            raise DuplicateEventError(stream_id, first.event_id, int(first.stream_position))
        if expected is not None and position != expected + i + 1:
            raise DuplicateEventError(stream_id, found.event_id, int(found.stream_position))
        same = checksums.matches(
            ring, found.checksum,
            lambda: row_message(stream_id, position, p, found.created_at),  # noqa: B023
            lambda: v1_checksum(stream_id, position, p, found.created_at),  # noqa: B023
        )
        if not same:
            raise DuplicateEventError(stream_id, found.event_id, int(found.stream_position))
    return AppendResult(
        stream_id, start + len(batch) - 1, [int(s.global_position) for s in stored],
        int(stored[-1].transaction_id), deduplicated=True,
    )


def foreign_aggregate(stream_id: str, head: StreamHead, batch: list[Prepared]) -> EventValidationError:
    e = batch[0].event
    return EventValidationError(
        f"stream {stream_id!r} belongs to aggregate {head.aggregate_type}/{head.aggregate_id}, "
        f"not {e.aggregate_type}/{e.aggregate_id}"
    )
