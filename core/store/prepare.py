"""An event ready to insert: canonical JSON, payload (compressed or not), checksum, row values.

Everything an append computes before it touches the database, so the
transaction holds the stream's lock only for the statements themselves. The
checksum is computed from the canonical JSON (``serialization.checksum_of``),
the one form that survives PostgreSQL's jsonb unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import codecs
from ..config import Settings
from ..errors import EventValidationError
from ..serialization import checksum_of, encode_json
from .persistence import EventMetadata, EventRecord

INSERT_COLUMNS = (
    "event_id, aggregate_id, aggregate_type, event_type, event_version, aggregate_version, "
    "stream_id, stream_position, event_data, payload, metadata, created_at, compression, "
    "checksum, original_size, stored_size"
)
# SQL types of the values of INSERT_COLUMNS, for the one-statement append.
ROW_TYPES = ("uuid", "text", "text", "text", "integer", "bigint", "text", "bigint", "jsonb",
              "bytea", "jsonb", "timestamptz", "text", "text", "integer", "integer")


@dataclass
class Prepared:
    """One event ready to insert: its canonical JSON and its (maybe compressed) payload."""

    event: EventRecord
    data_json: str
    metadata_json: str
    event_data: str | None
    payload: bytes | None
    compression: str
    original_size: int
    stored_size: int


def prepare(index: int, event: EventRecord, settings: Settings) -> Prepared:
    """Canonical JSON of the event, its payload compressed when that makes it smaller."""
    data_json = encode_json(event.event_data, "event_data", index)
    metadata = event.metadata if isinstance(event.metadata, EventMetadata) else None
    if metadata is None:
        raise EventValidationError("metadata must be an EventMetadata", index=index)
    metadata_json = encode_json(metadata.to_dict(), "metadata", index)
    raw = data_json.encode()
    codec = settings.compression
    if codec != "none" and len(raw) >= settings.compression_threshold:
        packed = codecs.compress(codec, raw)
        if len(packed) < len(raw):
            return Prepared(event, data_json, metadata_json, None, packed, codec,
                            len(raw), len(packed))
    return Prepared(event, data_json, metadata_json, data_json, None, "none", len(raw), len(raw))


def row_checksum(stream_id: str, position: int, p: Prepared) -> str:
    """The checksum the event gets at this position of this stream."""
    return checksum_of(p.event, p.data_json, p.metadata_json,
                       stream_id=stream_id, stream_position=position)


def insert_row(stream_id: str, position: int, p: Prepared) -> tuple[Any, ...]:
    """The values of INSERT_COLUMNS for the event at this position."""
    e = p.event
    return (
        e.event_id, e.aggregate_id, e.aggregate_type, e.event_type, e.event_version,
        position, stream_id, position, p.event_data, p.payload, p.metadata_json,
        e.created_at, p.compression, row_checksum(stream_id, position, p),
        p.original_size, p.stored_size,
    )
