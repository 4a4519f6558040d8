"""Canonical JSON and checksums (no database)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from evstore.core.serialization import checksum, checksum_of, dumps, encode_json

from evstore import EventMetadata, EventRecord, EventValidationError


def test_canonical_form_is_sorted_and_compact() -> None:
    assert dumps({"b": 1, "a": [1, {"d": 2, "c": None}]}) == '{"a":[1,{"c":null,"d":2}],"b":1}'
    assert dumps({"é": "ü"}) == '{"é":"ü"}'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e20, "100000000000000000000"),   # jsonb prints integral numbers without exponent
        (1e16, "10000000000000000"),
        (1e15, "1000000000000000.0"),      # Python prints this one without exponent already
        (-0.0, "0.0"),                     # numeric has no negative zero
        (1e-7, "1e-07"),                   # read back from 0.0000001 as the same float
        (0.1, "0.1"),
        (True, "true"),
    ],
)
def test_numbers_take_the_form_jsonb_gives_back(value: object, text: str) -> None:
    assert dumps(value) == text
    # and the form is stable: parsing it and dumping again changes nothing
    assert dumps(json.loads(text)) == text


def test_nested_normalisation() -> None:
    expected = '{"a":[100000000000000000000,{"b":0.0}],"c":[1,2]}'
    assert dumps({"a": [1e20, {"b": -0.0}], "c": (1, 2)}) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"x": float("nan")}, "not JSON-serializable"),
        ({"x": float("-inf")}, "not JSON-serializable"),
        ({"x": object()}, "not JSON-serializable"),
        ({"x": "a\x00"}, "NUL"),
        ({"x": "a\\\x00"}, "NUL"),
        ({"x": "\udfff"}, "surrogate"),
    ],
)
def test_encode_json_refuses(value: object, problem: str) -> None:
    with pytest.raises(EventValidationError, match=f"^event #3: event_data .*{problem}"):
        encode_json(value, "event_data", 3)


def test_a_literal_backslash_u0000_is_not_a_nul() -> None:
    text = encode_json({"path": "C:\\u0000", "k\\\\u0000": 1}, "event_data", 0)
    assert json.loads(text) == {"path": "C:\\u0000", "k\\\\u0000": 1}


def _digest(**changes: object) -> str:
    base: dict[str, object] = dict(
        event_id=str(uuid.UUID(int=1)), stream_id="User-1", stream_position=1, aggregate_id="1",
        aggregate_type="User", event_type="UserCreated", event_version=1,
        created_at=datetime(2024, 5, 1, 12, tzinfo=UTC), data_json='{"a":1}', metadata_json="{}",
    )
    base.update(changes)
    return checksum(**base)  # type: ignore[arg-type]


def test_checksum_is_sha256_hex_and_covers_every_field() -> None:
    reference = _digest()
    assert len(reference) == 64 and int(reference, 16) >= 0
    assert _digest() == reference
    for field, value in {
        "event_id": str(uuid.UUID(int=2)), "stream_id": "User-2", "stream_position": 2,
        "aggregate_id": "2", "aggregate_type": "Account", "event_type": "UserDeleted",
        "event_version": 2, "created_at": datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=UTC),
        "data_json": '{"a":2}', "metadata_json": '{"user_id":"x"}',
    }.items():
        assert _digest(**{field: value}) != reference, field


def test_checksum_does_not_depend_on_the_time_zone_of_created_at() -> None:
    there = datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    assert _digest(created_at=there) == _digest()


def test_checksum_of_a_record_a_dict_row_and_an_archive_line_is_the_one_checksum() -> None:
    created = datetime(2024, 5, 1, 12, tzinfo=UTC)
    head = dict(event_id=uuid.UUID(int=1), stream_id="User-1", stream_position=1, aggregate_id="1",
                aggregate_type="User", event_type="UserCreated", event_version=1, created_at=created)
    reference = _digest()
    # A dict row (uuid and datetime values) and an archive line (text values).
    assert checksum_of(head, '{"a":1}', "{}") == reference
    line = {**head, "event_id": str(head["event_id"]), "created_at": created.isoformat()}
    assert checksum_of(line, '{"a":1}', "{}") == reference
    # A record read back, and one about to be appended (its place given).
    stored = EventRecord(aggregate_id="1", aggregate_type="User", event_type="UserCreated",
                         event_data={"a": 1}, metadata=EventMetadata(), event_id=uuid.UUID(int=1),
                         created_at=created, stream_id="User-1", stream_position=1)
    assert checksum_of(stored, '{"a":1}', "{}") == reference
    fresh = EventRecord(aggregate_id="1", aggregate_type="User", event_type="UserCreated",
                        event_data={"a": 1}, metadata=EventMetadata(), event_id=uuid.UUID(int=1),
                        created_at=created)
    assert checksum_of(fresh, '{"a":1}', "{}", stream_id="User-1", stream_position=1) == reference
    assert checksum_of(stored, '{"a":1}', "{}", stream_position=2) == _digest(stream_position=2)
