"""Opaque keyset cursors: a position in the global order and the query it belongs to."""

from __future__ import annotations

import base64
import json

from ..errors import QueryError
from .criteria import EventSearchCriteria


def encode_cursor(transaction_id: int, global_position: int, criteria: EventSearchCriteria) -> str:
    body = json.dumps([transaction_id, global_position, criteria.fingerprint()]).encode()
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


def decode_cursor(cursor: str, criteria: EventSearchCriteria) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tx, pos, print_ = json.loads(raw)
        if not (isinstance(tx, int) and isinstance(pos, int) and 0 <= tx < 2**63 and 0 <= pos < 2**63):
            raise ValueError
    except (ValueError, TypeError, UnicodeDecodeError):
        raise QueryError(f"invalid cursor {cursor[:40]!r}: pass the next_cursor of a previous page") from None
    if print_ != criteria.fingerprint():
        raise QueryError("this cursor belongs to another query (its criteria differ)")
    return tx, pos
