"""Canonical JSON and checksums (and the JSON checks of ``encode_json``).

The checksum of an event is the SHA-256 of a canonical JSON document of its
content and its place in the stream. The canonical form must give the same
bytes before the event is stored and after it has been through PostgreSQL's
jsonb, so it sorts keys, uses compact separators, and writes integral floats
that Python would print with an exponent (``1e+16``) as integers, which is how
jsonb's numeric gives them back.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
from datetime import UTC, datetime
from typing import Any

from .errors import EventValidationError

# An escaped NUL, not a literal backslash followed by "u0000" (written "\\\\u0000").
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _odd_float(value: float) -> bool:
    """A float jsonb gives back in another form: 1e+16 as an integer, -0.0 as 0.0."""
    return value.is_integer() and ("e" in repr(value) or (value == 0 and repr(value)[0] == "-"))


def _normalise(value: Any) -> Any:
    if isinstance(value, float):
        if _odd_float(value):
            return 0.0 if value == 0 else int(value)
        return value
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def _has_exp_float(value: Any) -> bool:
    if isinstance(value, float):
        return _odd_float(value)
    if isinstance(value, dict):
        return any(_has_exp_float(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_exp_float(v) for v in value)
    return False


# One encoder for every canonical dump (json.dumps would build one per call).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(value: Any) -> str:
    """Canonical, compact JSON text."""
    text = _ENCODER.encode(value)
    # A float jsonb would give back in another form prints as "1e+16" or "-0.0":
    # only then is the value walked and normalised (rarely; the walk is slow).
    if ("e+" in text or "-0.0" in text) and _has_exp_float(value):
        text = _ENCODER.encode(_normalise(value))
    return text


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def checksum(
    *,
    event_id: str,
    stream_id: str,
    stream_position: int,
    aggregate_id: str,
    aggregate_type: str,
    event_type: str,
    event_version: int,
    created_at: datetime,
    data_json: str,
    metadata_json: str,
) -> str:
    """SHA-256 (hex) of an event's canonical document."""
    return _digest([event_id, stream_id, stream_position, aggregate_id, aggregate_type,
                    event_type, event_version, iso(created_at)], data_json, metadata_json)


def _digest(head: list[Any], data_json: str, metadata_json: str) -> str:
    # The head holds text and integers only, so the encoder's text is already canonical.
    h = hashlib.sha256(_ENCODER.encode(head).encode())
    h.update(b"\n")
    h.update(data_json.encode())
    h.update(b"\n")
    h.update(metadata_json.encode())
    return h.hexdigest()


# The head of the checksummed document, read from a dict or from an object's attributes.
_HEAD = ("event_id", "stream_id", "stream_position", "aggregate_id", "aggregate_type", "event_type",
         "event_version", "created_at")
_HEAD_ITEMS = operator.itemgetter(*_HEAD)
_HEAD_ATTRS = operator.attrgetter(*_HEAD)


def checksum_of(
    event: Any,
    data_json: str,
    metadata_json: str,
    *,
    stream_id: str | None = None,
    stream_position: int | None = None,
) -> str:
    """The checksum of one stored event: the one helper every caller uses.

    ``event`` is an EventRecord (or any object with the head's attributes) or
    a dict with the same keys (an archive line, a dict row); ``created_at``
    may be a datetime or its ISO text. ``stream_id`` and ``stream_position``,
    when given, stand for the event's own (an event about to be appended has
    none yet). ``data_json`` and ``metadata_json`` are the canonical JSON
    (``dumps``) of the event's data and metadata. Appends call it for every
    event, so it reads the fields with one C getter, with no intermediate mapping.
    """
    (event_id, own_stream_id, own_position, aggregate_id, aggregate_type, event_type,
     event_version, created_at) = (_HEAD_ITEMS if isinstance(event, dict) else _HEAD_ATTRS)(event)
    if stream_id is None:
        stream_id = own_stream_id
    if stream_position is None:
        stream_position = own_position
    if isinstance(created_at, str):
        created_at = datetime.fromisoformat(created_at)
    return _digest([str(event_id), stream_id, stream_position, aggregate_id, aggregate_type,
                    event_type, event_version, iso(created_at)], data_json, metadata_json)


def encode_json(value: Any, what: str, index: int) -> str:
    try:
        text = dumps(value)
    except (TypeError, ValueError) as exc:
        raise EventValidationError(f"{what} is not JSON-serializable: {exc}", index=index) from None
    # jsonb refuses NUL characters and lone surrogates in strings.
    if "\\u0000" in text and _NUL.search(text):
        raise EventValidationError(f"{what} contains a NUL character (\\u0000)", index=index)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise EventValidationError(f"{what} contains an invalid Unicode surrogate", index=index) from None
    return text
