"""An event ready to insert: its stored JSON text, payload (compressed or not), checksum, row values.

Everything an append computes before it touches the database, so the
transaction holds the stream's lock only for the statements themselves. The
JSON is written in the form PostgreSQL's jsonb gives back
(``serialization.jsonb_text``), and the checksum (``core/checksums.py``,
version 2) authenticates exactly those bytes, so a read verifies what it
received without re-serialising anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import checksums, codecs
from ..config import Settings
from ..errors import EventValidationError
from ..keys import HmacSha256
from ..serialization import checksum, dumps, encode_json
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
    data_bytes: bytes
    metadata_bytes: bytes
    # The current checksum key and its "2:<kid>:" prefix (checksums.signer), once per append.
    signing: tuple[HmacSha256, str]
    event_data: str | None
    payload: bytes | None
    compression: str
    original_size: int
    stored_size: int


def prepare(index: int, event: EventRecord, settings: Settings,
            signing: tuple[HmacSha256, str]) -> Prepared:
    """Canonical JSON of the event, its payload compressed when that makes it smaller."""
    data_json = encode_json(event.event_data, "event_data", index)
    metadata = event.metadata if isinstance(event.metadata, EventMetadata) else None
    if metadata is None:
        raise EventValidationError("metadata must be an EventMetadata", index=index)
    metadata_json = encode_json(metadata.to_dict(), "metadata", index)
    raw = data_json.encode()
    meta = metadata_json.encode()
    if len(raw) + len(meta) > settings.max_event_bytes:
        raise EventValidationError(
            f"event is {len(raw) + len(meta):,} bytes of JSON, more than the maximum of "
            f"{settings.max_event_bytes:,} (EVENT_STORE_MAX_EVENT_BYTES)", index=index)
    codec = settings.compression
    if codec != "none" and len(raw) >= settings.compression_threshold:
        packed = codecs.compress(codec, raw)
        if len(packed) < len(raw):
            return Prepared(event, data_json, metadata_json, raw, meta, signing, None,
                            packed, codec, len(raw), len(packed))
    return Prepared(event, data_json, metadata_json, raw, meta, signing, data_json, None,
                    "none", len(raw), len(raw))


def row_message(stream_id: str, position: int, p: Prepared, created_at: datetime | None = None) -> bytes:
    """What the event's checksum authenticates at this position (``created_at``: another time)."""
    e = p.event
    # The stored aggregate_version is the stream position (insert_row).
    return checksums.message(
        e.event_id, stream_id, position, e.aggregate_id, e.aggregate_type, e.event_type,
        e.event_version, position, created_at or e.created_at, p.data_bytes, p.metadata_bytes)


def row_checksum(stream_id: str, position: int, p: Prepared) -> str:
    """The (version 2) checksum the event gets at this position of this stream."""
    mac, prefix = p.signing
    return prefix + mac.hexdigest(row_message(stream_id, position, p))


def v1_checksum(stream_id: str, position: int, p: Prepared, created_at: datetime) -> str:
    """The old (version 1) checksum of the event, to recognise a retry of an event stored before 0006."""
    e = p.event
    meta = e.metadata.to_dict() if isinstance(e.metadata, EventMetadata) else {}
    return checksum(event_id=str(e.event_id), stream_id=stream_id, stream_position=position,
                    aggregate_id=e.aggregate_id, aggregate_type=e.aggregate_type,
                    event_type=e.event_type, event_version=e.event_version, created_at=created_at,
                    data_json=dumps(e.event_data), metadata_json=dumps(meta))


def insert_row(stream_id: str, position: int, p: Prepared) -> tuple[Any, ...]:
    """The values of INSERT_COLUMNS for the event at this position."""
    e = p.event
    return (
        e.event_id, e.aggregate_id, e.aggregate_type, e.event_type, e.event_version,
        position, stream_id, position, p.event_data, p.payload, p.metadata_json,
        e.created_at, p.compression, row_checksum(stream_id, position, p),
        p.original_size, p.stored_size,
    )
