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
from decimal import Decimal
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


# -- the stored form: jsonb's own text ----------------------------------------------
#
# Checksums of version 2 (core/checksums.py) hash the JSON text exactly as
# PostgreSQL sends a jsonb value back, so a read verifies the bytes it
# received and decodes them once. An append therefore writes that same text:
# keys sorted by their UTF-8 length and then bytes, ", " and ": " between
# items, numbers as numeric prints them (no exponent, no negative zero), and
# strings escaped as jsonb escapes them (which is json's own escaping with
# ensure_ascii off). tests/integration/core/test_canonical_json.py checks it
# against the server.

# The deepest nesting accepted in event data or metadata (a documented limit:
# deeper documents are refused, not a RecursionError).
MAX_DEPTH = 64
_JSONB_ENCODER = json.JSONEncoder(separators=(", ", ": "), ensure_ascii=False, allow_nan=False)


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder itself, made once (JSONEncoder.encode builds one per call): no
# circular check (the walk before it bounds the depth), NaN refused.
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
if _c_encoder is not None:
    _C_JSONB = _c_encoder(None, _not_json, json.encoder.c_encode_basestring,  # type: ignore[attr-defined]
                          None, ": ", ", ", False, False, False)

    def _encode(value: Any) -> str:
        return "".join(_C_JSONB(value, 0))
else:  # pragma: no cover (CPython always has it)
    def _encode(value: Any) -> str:
        return _JSONB_ENCODER.encode(value)


class _OddFloats(Exception):
    """A float numeric prints otherwise than Python (1e-07, 1e+16, -0.0): take the slow path."""


def _key_order(item: tuple[str, Any]) -> tuple[int, str]:
    key = item[0]
    # UTF-8 preserves code point order, so the key itself sorts like its bytes.
    return (len(key) if key.isascii() else len(key.encode("utf-8", "surrogatepass")), key)


def _jsonb_value(value: Any, depth: int, odd: list[bool]) -> Any:
    """``value`` with every object's keys in jsonb's order; refuses what jsonb cannot hold."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
        if (value == 0.0 and str(value)[0] == "-") or "e" in repr(value):
            odd[0] = True
        return value
    if depth >= MAX_DEPTH:
        raise _TooDeep()
    if t is dict:
        if not value:
            return value
        try:
            keys = sorted(value)
        except TypeError:  # keys of types that do not compare: not all strings
            keys = []
        if keys and type(keys[0]) is str and type(keys[-1]) is str and "".join(keys).isascii():
            # The common case: ASCII string keys (only strings compare with
            # strings), ordered by length then text: a stable sort by length.
            keys.sort(key=len)
            out = {}
            for key in keys:
                item = value[key]
                leaf = type(item)
                out[key] = (item if leaf is str or leaf is int or leaf is bool or item is None
                            else _jsonb_value(item, depth + 1, odd))
            return out
        items: list[tuple[str, Any]] = []
        append = items.append
        for key, item in value.items():
            if type(key) is not str:
                if not isinstance(key, str):
                    raise _BadKey(key)
                key = str.__str__(key)
            append((key, _jsonb_value(item, depth + 1, odd)))
        items.sort(key=_key_order)
        return dict(items)
    if t is list or t is tuple:
        return [item if type(item) is str or type(item) is int
                else _jsonb_value(item, depth + 1, odd) for item in value]
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return _jsonb_value(float(value), depth, odd)
    if isinstance(value, dict | list | tuple):
        return _jsonb_value(dict(value) if isinstance(value, dict) else list(value), depth, odd)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _TooDeep(Exception):
    pass


class _BadKey(Exception):
    def __init__(self, key: Any) -> None:
        self.key = key


def _number_text(value: float) -> str:
    """A float as numeric prints it: positional, never an exponent, no negative zero."""
    if value == 0.0:
        return "0.0"  # numeric has no negative zero
    text = repr(value)
    if "e" in text:
        # An integral float as its exact integer (it reads back equal), any
        # other in positional notation, as numeric prints them.
        text = str(int(value)) if value.is_integer() else format(Decimal(text), "f")
    return text


def _slow_jsonb(value: Any) -> str:
    """The jsonb text of an already ordered value, written by hand (floats with exponents)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_string(k)}: {_slow_jsonb(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_slow_jsonb(v) for v in value) + "]"
    if isinstance(value, float):
        return _number_text(value)
    return _JSONB_ENCODER.encode(value)


_string = json.encoder.py_encode_basestring


def jsonb_text(value: Any, what: str = "value", index: int | None = None) -> str:
    """The text PostgreSQL gives back for ``value`` stored as jsonb; refuses what jsonb cannot hold.

    Raises EventValidationError naming ``what`` (and the event ``index``) for
    a value that is not JSON, a non-string key, nesting deeper than
    ``MAX_DEPTH``, a NUL character or a lone surrogate.
    """
    odd = [False]
    try:
        ordered = _jsonb_value(value, 0, odd)
        text = _slow_jsonb(ordered) if odd[0] else _encode(ordered)
    except _TooDeep:
        raise EventValidationError(f"{what} is nested deeper than {MAX_DEPTH} levels",
                                   index=index) from None
    except _BadKey as exc:
        raise EventValidationError(
            f"{what} has a key that is not a string ({type(exc.key).__name__}): JSON object keys "
            "must be strings", index=index) from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise EventValidationError(f"{what} is not JSON-serializable: {exc}", index=index) from None
    # jsonb refuses NUL characters and lone surrogates in strings.
    if "\\u0000" in text and _NUL.search(text):
        raise EventValidationError(f"{what} contains a NUL character (\\u0000)", index=index)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise EventValidationError(f"{what} contains an invalid Unicode surrogate", index=index) from None
    return text


def encode_json(value: Any, what: str, index: int) -> str:
    """The stored (jsonb) text of an event's data or metadata, or EventValidationError."""
    return jsonb_text(value, what, index)
