"""Validation of a batch before anything touches the database.

A malformed append is refused whole, with an EventValidationError naming the
field and the index of the event, never a raw driver error: the checks here
mirror the columns' types and constraints (text that is not empty nor too
long nor holds a NUL, integers in the range of their column, timezone-aware
times in the years the partitions can hold, one aggregate per stream).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from ..errors import EventValidationError
from .persistence import EventRecord

# The longest name (event type, aggregate id or type); a stream id may be twice as long.
MAX_NAME = 200


def _check_text(value: Any, what: str, index: int) -> None:
    if not isinstance(value, str) or not value.strip():
        raise EventValidationError(
            f"{what} must be a non-empty string (got {type(value).__name__}"
            f"{' of length ' + str(len(value)) if isinstance(value, str) else ''})", index=index)
    if len(value) > MAX_NAME:
        raise EventValidationError(f"{what} is longer than {MAX_NAME} characters", index=index)
    if "\x00" in value:
        raise EventValidationError(f"{what} contains a NUL character", index=index)


def validate_batch(stream_id: str, events: list[EventRecord]) -> None:
    """Refuse a malformed batch before anything touches the database."""
    if not isinstance(stream_id, str) or not stream_id.strip():
        raise EventValidationError(f"stream id must be a non-empty string (got {stream_id!r})")
    if len(stream_id) > MAX_NAME * 2 or "\x00" in stream_id:
        raise EventValidationError("stream id is too long or contains a NUL character")
    if not events:
        raise EventValidationError("nothing to append: the list of events is empty")
    seen: set[Any] = set()
    first = events[0]
    for i, event in enumerate(events):
        if not isinstance(event, EventRecord):
            raise EventValidationError(
                f"expected an EventRecord, got {type(event).__name__}", index=i
            )
        _check_text(event.event_type, "event_type", i)
        _check_text(event.aggregate_id, "aggregate_id", i)
        _check_text(event.aggregate_type, "aggregate_type", i)
        if not isinstance(event.event_data, dict):
            raise EventValidationError(
                f"event_data must be a JSON object (dict), got {type(event.event_data).__name__}",
                index=i,
            )
        if (event.aggregate_id, event.aggregate_type) != (first.aggregate_id, first.aggregate_type):
            raise EventValidationError(
                f"stream {stream_id!r} mixes aggregates: {first.aggregate_type}/{first.aggregate_id}"
                f" and {event.aggregate_type}/{event.aggregate_id}",
                index=i,
            )
        if event.event_id in seen:
            raise EventValidationError(f"duplicate event id {event.event_id} in one append", index=i)
        seen.add(event.event_id)
        if not isinstance(event.created_at, datetime) or event.created_at.tzinfo is None:
            raise EventValidationError(
                "created_at must be a timezone-aware datetime (e.g. datetime.now(UTC))", index=i
            )
        if not 1 <= event.created_at.astimezone(UTC).year <= 9998:
            raise EventValidationError("created_at must fall between the years 1 and 9998", index=i)
        if not isinstance(event.event_version, int) or not 1 <= event.event_version < 2**31:
            raise EventValidationError("event_version must be an integer from 1 to 2**31-1", index=i)
        if not isinstance(event.aggregate_version, int) or not 0 <= event.aggregate_version < 2**62:
            raise EventValidationError("aggregate_version must be an integer from 0 to 2**62-1",
                                       index=i)
        if not isinstance(event.event_id, uuid.UUID):
            raise EventValidationError(
                f"event_id must be a uuid.UUID (got {type(event.event_id).__name__} "
                f"{event.event_id!r})", index=i)
        if first.aggregate_version and event.aggregate_version != first.aggregate_version + i:
            raise EventValidationError(
                f"aggregate_version {event.aggregate_version} breaks the sequence starting at "
                f"{first.aggregate_version} (expected {first.aggregate_version + i})",
                index=i,
            )
        if not first.aggregate_version and event.aggregate_version:
            raise EventValidationError(
                "aggregate_version is set on some events of the append but not the first", index=i
            )
