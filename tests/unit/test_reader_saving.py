"""SaveQueue (pure, with a fake checkpoint store): what docs/reader.md promises of saves.

A checkpoint moves past a batch only when it and every batch read before it
were handled; events per shard add up across the batches folded into one
save; pages with nothing for this member are saved at most once a second; a
save only covers the shards this member owns, and reports the ones it lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from evstore.core.reader import saving
from evstore.core.reader.saving import Saved, SaveQueue
from evstore.core.store.persistence import Position


class FakeCheckpoints:
    def __init__(self, still_owned: set[int] | None = None) -> None:
        self.saves: list[tuple[Position, dict[int, int]]] = []
        self.still_owned = still_owned

    def save(self, name: str, group: str, member: str, position: Position,
             counts: Mapping[int, int]) -> set[int]:
        self.saves.append((position, dict(counts)))
        return set(counts) if self.still_owned is None else set(counts) & self.still_owned


class FakeMembership:
    def __init__(self, owned: set[int]) -> None:
        self.owned = owned

    def snapshot(self) -> dict[int, Position]:
        return dict.fromkeys(self.owned, Position(0, 0))


def queue(checkpoints: FakeCheckpoints) -> SaveQueue:
    q = SaveQueue(checkpoints, "proj", "g", "m")  # type: ignore[arg-type]
    q.start()
    return q


def pos(n: int) -> Position:
    return Position(1, n)


def test_a_batch_is_saved_only_once_every_earlier_batch_was_handled() -> None:
    cps, member = FakeCheckpoints(), FakeMembership({0, 1})
    q = queue(cps)
    first, second = q.add(pos(10), {0: 2, 1: 0}), q.add(pos(20), {0: 1, 1: 3})
    assert q.save({second}, member, force=False) is None  # the first is still in flight
    assert cps.saves == []
    assert q.save({first}, member, force=False) == Saved(pos(20), set())
    assert cps.saves == [(pos(20), {0: 3, 1: 3})]  # one save, the counts added up


def test_pages_with_nothing_wanted_are_saved_at_most_once_a_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(saving.time, "monotonic", lambda: now[0])
    cps, member = FakeCheckpoints(), FakeMembership({0})
    q = queue(cps)
    assert q.save({q.add(pos(1), {0: 0})}, member, force=False) is None
    now[0] += 0.5
    assert q.save({q.add(pos(2), {0: 0})}, member, force=False) is None
    now[0] += 0.5
    assert q.save({q.add(pos(3), {0: 0})}, member, force=False) == Saved(pos(3), set())
    assert q.save({q.add(pos(4), {0: 0})}, member, force=False) is None
    assert q.save(set(), member, force=True) == Saved(pos(4), set())  # a forced save goes now
    assert [p for p, _ in cps.saves] == [pos(3), pos(4)]


def test_a_save_covers_the_owned_shards_and_reports_the_lost_ones() -> None:
    cps = FakeCheckpoints(still_owned={0})
    q = queue(cps)
    batch = q.add(pos(5), {0: 1, 1: 1, 2: 1})
    saved: Any = q.save({batch}, FakeMembership({0, 1}), force=False)
    assert cps.saves == [(pos(5), {0: 1, 1: 1})]  # shard 2 is not ours: left out
    assert saved == Saved(pos(5), {1})  # shard 1 was taken meanwhile


def test_nothing_is_saved_without_a_membership() -> None:  # REPLAY keeps no checkpoint
    cps = FakeCheckpoints()
    q = queue(cps)
    assert q.save({q.add(pos(5), {0: 1})}, None, force=True) is None
    assert cps.saves == []
