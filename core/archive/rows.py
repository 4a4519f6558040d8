"""Segment format 2: an archived segment as PostgreSQL's COPY text rows.

Format 1 (``evstore-archive-segment/1``, ``.jsonl.zst``) wrote one JSON object
per event; every archive written before format 2 is one, and stays readable.
Format 2 (``evstore-archive-segment/2``, ``.tsv.zst``) writes one line per
event in COPY's text form (``COPY ... TO STDOUT``: fields separated by tabs,
``\\N`` for NULL, backslash escapes for backslash, tab, newline and carriage
return), of the columns in ``COLUMNS`` order. The export streams these lines
from PostgreSQL as they come (fastexport.py): no line is built in Python, and
the first eleven columns, joined by NUL, are exactly the message a version-2
checksum authenticates (core/checksums.py), so each event is verified over
the bytes received. Times are microseconds since 1970 (UTC), the id its 32
hex digits, the payload (a compressed body) ``\\x`` and hex as bytea prints.

Everything that reads a segment (restore, read-through, verify, forget's
rewrite) turns either format into the same dicts (``segments.FIELDS``, as
format 1's JSON held them) with :func:`parse_segment`, which tells the formats
apart by their first byte (``{`` only in format 1).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import ArchiveIntegrityError
from ..serialization import iso

FORMAT_V1 = "evstore-archive-segment/1"
FORMAT_V2 = "evstore-archive-segment/2"
SUFFIX_V1 = ".jsonl.zst"
SUFFIX_V2 = ".tsv.zst"

# The columns of a format-2 line, in file order. The first eleven are the message of a
# version-2 checksum, in its order (core/checksums.message).
COLUMNS = (
    "event_id", "stream_id", "stream_position", "aggregate_id", "aggregate_type", "event_type",
    "event_version", "aggregate_version", "created_at", "event_data", "metadata",
    "global_position", "transaction_id", "payload", "stored_at", "status", "compression",
    "encryption", "checksum", "original_size", "stored_size",
)
MESSAGE_COLUMNS = 11
_INTS = ("stream_position", "event_version", "aggregate_version", "global_position",
         "transaction_id")
_OPTIONAL_INTS = ("original_size", "stored_size")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_NULL = "\\N"
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "v": "\v"}
_ESCAPED = re.compile(r"\\(.)", re.S)
_TO_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _unescape(text: str) -> str | None:
    if text == _NULL:
        return None
    if "\\" not in text:
        return text
    return _ESCAPED.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(1)), text)


def _escape(value: str | None) -> str:
    return _NULL if value is None else value.translate(_TO_ESCAPE)


def time_of(microseconds: int) -> datetime:
    return _EPOCH + timedelta(microseconds=microseconds)


def microseconds_of(text: str) -> int:
    return (datetime.fromisoformat(text) - _EPOCH) // _MICRO


def line_of_row(row: str) -> dict[str, Any]:
    """One format-2 line (without its newline) as an archived event's dict (format 1's
    fields and types). ValueError when it is not one."""
    values = row.split("\t")
    if len(values) != len(COLUMNS):
        raise ValueError(f"{len(values)} fields, {len(COLUMNS)} expected")
    f: dict[str, Any] = {name: _unescape(v) for name, v in zip(COLUMNS, values, strict=True)}
    for name in _INTS:
        f[name] = int(f[name])
    for name in _OPTIONAL_INTS:
        if f[name] is not None:
            f[name] = int(f[name])
    f["event_id"] = str(uuid.UUID(hex=f["event_id"]))
    f["created_at"] = iso(time_of(int(f["created_at"])))
    f["stored_at"] = iso(time_of(int(f["stored_at"])))
    payload = f["payload"]
    if payload is not None:
        if not payload.startswith("\\x"):
            raise ValueError("payload is not bytea hex")
        f["payload"] = base64.b64encode(bytes.fromhex(payload[2:])).decode()
    if f["metadata"] is None or f["checksum"] is None:
        raise ValueError("metadata and checksum are never NULL")
    return f


def row_of_line(line: dict[str, Any]) -> str:
    """An archived event's dict as one format-2 line (without its newline)."""
    payload = line["payload"]
    values = {
        **line,
        "event_id": uuid.UUID(str(line["event_id"])).hex,
        "created_at": str(microseconds_of(line["created_at"])),
        "stored_at": str(microseconds_of(line["stored_at"])),
        "payload": None if payload is None else "\\x" + base64.b64decode(payload).hex(),
    }
    return "\t".join(_escape(None if values[name] is None else str(values[name]))
                     for name in COLUMNS)


def encode_lines(lines: Iterable[dict[str, Any]]) -> bytes:
    """Format-2 bytes of ``lines`` (one per event, each ending in a newline)."""
    return "".join(row_of_line(line) + "\n" for line in lines).encode()


def parse_segment(raw: bytes, fields: Iterable[str], where: str) -> list[dict[str, Any]]:
    """The events of a decompressed segment of either format, as dicts with every name of
    ``fields``; ArchiveIntegrityError naming the first line that is not an event."""
    wanted = tuple(fields)
    json_lines = raw[:1] == b"{"
    lines = []
    for number, text in enumerate(raw.split(b"\n"), 1):
        if not text:
            continue
        try:
            line = json.loads(text) if json_lines else line_of_row(text.decode())
        except (ValueError, TypeError):
            line = None
        if not isinstance(line, dict) or not all(name in line for name in wanted):
            raise ArchiveIntegrityError(f"{where}: line {number} is not an archived event")
        lines.append(line)
    return lines
