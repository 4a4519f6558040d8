"""Event checksums: what a stored event's ``checksum`` column holds, and how a read checks it.

Two versions are in use; the text says which:

- **version 2** (every event appended now): ``2:<key id>:<hex>``, an
  HMAC-SHA256, with the store's checksum key (core/keys.py: a secret that is
  not in the database), of the event's head (id, stream, position, aggregate,
  type, versions, time) and the exact bytes of its data and metadata as
  PostgreSQL sends their jsonb back (core/serialization.py writes that form).
  Whoever can rewrite a row but does not hold the secret cannot make a
  checksum that verifies; a read hashes the bytes it received and decodes
  them once.
- **version 1** (events appended before migration 0006): a bare 64-digit
  SHA-256 of a compact canonical form, unkeyed. Still verified (by
  re-serialising, the slow way) and re-signed as version 2 by
  ``evstore verify --upgrade`` after it has been checked.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .keys import CHECKSUM, HmacSha256, KeyRing, UnknownKeyError

VERSION = 2
_PREFIX = "2:"
MESSAGE_HEAD = "evstore-event-v2\0"  # what a version-2 message starts with
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def message(
    event_id: Any, stream_id: str, stream_position: int, aggregate_id: str, aggregate_type: str,
    event_type: str, event_version: int, aggregate_version: int, created_at: datetime,
    data: bytes, metadata: bytes,
) -> bytes:
    """The bytes a version-2 checksum authenticates.

    The head's fields are joined by NUL, which none of them can hold (names
    with a NUL are refused on append); the id is its 32 hex digits, the time
    its microseconds since 1970 (UTC). Then the data and metadata bytes.
    """
    eid = event_id.hex if type(event_id) is uuid.UUID else uuid.UUID(str(event_id)).hex
    head = (f"{MESSAGE_HEAD}{eid}\0{stream_id}\0{stream_position}\0{aggregate_id}\0"
            f"{aggregate_type}\0{event_type}\0{event_version}\0{aggregate_version}\0"
            f"{(created_at - _EPOCH) // _MICROSECOND}\0")
    return b"".join((head.encode(), data, b"\0", metadata))


def message_of(fields: Mapping[str, Any], data: bytes, metadata: bytes) -> bytes:
    """:func:`message` from a mapping of the columns (a dict row, an archive line)."""
    created_at = fields["created_at"]
    if isinstance(created_at, str):
        created_at = datetime.fromisoformat(created_at)
    return message(fields["event_id"], fields["stream_id"], int(fields["stream_position"]),
                   fields["aggregate_id"], fields["aggregate_type"], fields["event_type"],
                   int(fields["event_version"]), int(fields["aggregate_version"]), created_at,
                   data, metadata)


def sign(ring: KeyRing, msg: bytes) -> str:
    """The version-2 checksum of ``msg`` (from :func:`message`) with the current key."""
    mac, prefix = signer(ring)
    return prefix + mac.hexdigest(msg)


def signer(ring: KeyRing) -> tuple[HmacSha256, str]:
    """The current checksum HMAC and the text a checksum made with it starts with."""
    return ring.hmac(CHECKSUM), f"{_PREFIX}{ring.kid}:"


def version_of(stored: str) -> int:
    return 2 if stored.startswith(_PREFIX) else 1


def matches(ring: KeyRing, stored: str, msg: Callable[[], bytes], v1: Callable[[], str]) -> bool:
    """Whether ``stored`` is right for the event: ``msg`` builds the v2 message, ``v1`` the old digest.

    Raises UnknownKeyError when the checksum was made with a key this
    process was not given (a configuration problem, not a tampered event).
    """
    if stored.startswith(_PREFIX):
        kid, _, mac = stored[2:].partition(":")
        return hmac.compare_digest(ring.hmac(CHECKSUM, kid).hexdigest(msg()), mac)
    return hmac.compare_digest(v1(), stored)


__all__ = ["VERSION", "UnknownKeyError", "matches", "message", "message_of", "sign", "version_of"]
