"""Checkpoints (Position) and metadata: plain values with a text form."""

from __future__ import annotations

import pytest
from evstore.core.store.persistence import StoreMetrics

from evstore import START, EventMetadata, Position


def test_position_text_round_trip_and_order() -> None:
    p = Position(1234, 56)
    assert str(p) == "1234:56" and Position.parse("1234:56") == p
    assert Position.parse(" 7:8 ") == Position(7, 8)
    assert START == Position(0, 0) < Position(0, 1) < Position(1, 0) < Position(1, 2**63 - 1)
    assert max(Position(5, 1), Position(4, 99)) == Position(5, 1)


@pytest.mark.parametrize("text", ["", "12", "a:b", "1:2:3", "1.5:2", "-1:3", "3:-1"])
def test_position_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid checkpoint"):
        Position.parse(text)


def test_metadata_round_trip_keeps_extra_keys() -> None:
    meta = EventMetadata(user_id="u1", correlation_id="c", causation_id="k", gdpr_compliant=False,
                         source="web", extra={"ip": "10.0.0.1", "tags": ["a"]})
    data = meta.to_dict()
    assert data == {"user_id": "u1", "correlation_id": "c", "causation_id": "k",
                    "gdpr_compliant": False, "source": "web", "ip": "10.0.0.1", "tags": ["a"]}
    assert EventMetadata.from_dict(data) == meta
    assert EventMetadata.from_dict(None) == EventMetadata()


def test_compression_ratio() -> None:
    metrics = StoreMetrics(events=1, streams=1, partitions=1, total_bytes=1,
                           original_payload_bytes=300, stored_payload_bytes=100,
                           compressed_events=1, events_by_type={})
    assert metrics.compression_ratio == 3.0
    empty = StoreMetrics(0, 0, 0, 0, 0, 0, 0, {})
    assert empty.compression_ratio == 1.0


@pytest.mark.parametrize("bad", [(2**64, 0), (0, 2**63), (-1, 0), (True, 0)])
def test_out_of_range_positions_are_refused(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="must be an integer from 0 to 2\\*\\*63-1"):
        Position(*bad)


def test_an_out_of_range_checkpoint_text_is_named() -> None:
    with pytest.raises(ValueError, match="invalid checkpoint '18446744073709551616:1'"):
        Position.parse("18446744073709551616:1")
