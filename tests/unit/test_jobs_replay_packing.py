"""Replay planning without a database: how streams are packed into batches, and the filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from evstore.core.db import Database
from evstore.core.errors import InvalidJobError
from evstore.core.jobs.replay import ReplaySelection, StreamSpan, pack_streams

DB = Database(None, "events")  # type: ignore[arg-type]  (SQL text only, no connection)


def spans(*sizes: int) -> list[StreamSpan]:
    """Streams s0, s1, ... with these event counts, at increasing positions."""
    out, position = [], 1
    for i, size in enumerate(sizes):
        out.append(StreamSpan(f"s{i}", size, position, position + size - 1))
        position += size
    return out


def ids(batches: list[list[StreamSpan]]) -> list[list[str]]:
    return [[s.stream_id for s in batch] for batch in batches]


def test_streams_fill_a_batch_up_to_the_batch_size_exactly() -> None:
    batches = pack_streams(spans(2, 3, 5, 1, 4), batch_size=5)
    assert ids(batches) == [["s0", "s1"], ["s2"], ["s3", "s4"]]
    assert [sum(s.events for s in b) for b in batches] == [5, 5, 5]


def test_a_stream_larger_than_the_batch_size_gets_a_batch_of_its_own() -> None:
    batches = pack_streams(spans(1, 12, 1), batch_size=4)
    assert ids(batches) == [["s0"], ["s1"], ["s2"]]
    assert batches[1][0].events == 12


def test_first_event_order_is_kept_and_every_stream_appears_once() -> None:
    given = spans(3, 1, 4, 1, 5, 9, 2, 6)
    batches = pack_streams(given, batch_size=7)
    flat = [s for batch in batches for s in batch]
    assert flat == given
    assert ids(batches) == [["s0", "s1"], ["s2", "s3"], ["s4"], ["s5"], ["s6"], ["s7"]]


def test_batch_size_one_gives_one_stream_per_batch() -> None:
    assert ids(pack_streams(spans(1, 2, 1), batch_size=1)) == [["s0"], ["s1"], ["s2"]]


def test_nothing_to_pack_gives_no_batch() -> None:
    assert pack_streams([], batch_size=10) == []


@pytest.mark.parametrize("size", [0, -3])
def test_a_batch_size_below_one_is_refused(size: int) -> None:
    with pytest.raises(InvalidJobError, match=rf"batch_size must be >= 1 \(got {size}\)"):
        pack_streams(spans(1), batch_size=size)


def test_where_joins_the_fragments_of_the_set_fields_in_a_fixed_order() -> None:
    selection = ReplaySelection(to_position=90, from_time=datetime(2024, 1, 1, tzinfo=UTC),
                                event_types=("A", "B"))
    where, args = selection.where(DB)
    assert where == ("AND global_position <= %(to_position)s AND created_at >= %(from_time)s "
                     "AND event_type = ANY(%(event_types)s)")
    assert args == {"to_position": 90, "from_time": datetime(2024, 1, 1, tzinfo=UTC),
                    "event_types": ["A", "B"]}
