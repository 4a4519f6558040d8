"""What a reader may save: batches handled, in the order they were read.

Batches are handled out of order (several handler threads), but a checkpoint
may only move past a batch when it and every batch read before it were
handled: otherwise a crash would skip the unhandled ones. ``SaveQueue`` keeps
the batches in read order, folds the handled prefix into one unsaved
checkpoint (with the events per shard it covers), and saves it for the shards
this member still owns. A page with nothing for this member is saved at most
once a second, so an idle reader does not write on every read.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

from ..store.persistence import Position
from .checkpoints import CheckpointStore
from .groups import Membership

_EMPTY_SAVE_EVERY = 1.0  # seconds between saves that only move past unwanted events


@dataclass
class _Batch:
    id: int
    checkpoint: Position
    counts: dict[int, int]


class _Unsaved(NamedTuple):
    """The checkpoint of the batches handled but not saved yet, and events per shard."""

    checkpoint: Position
    counts: dict[int, int]


class Saved(NamedTuple):
    """What one save did: the checkpoint saved, and the shards found lost meanwhile."""

    checkpoint: Position
    lost: set[int]


class SaveQueue:
    """The batches of one reader, in read order, until their checkpoint is saved."""

    def __init__(self, checkpoints: CheckpointStore, name: str, group: str, member: str) -> None:
        self._checkpoints = checkpoints
        self._key = (name, group, member)
        self._pending: deque[_Batch] = deque()
        self._done: set[int] = set()
        self._unsaved: _Unsaved | None = None
        self._next_id = 0
        self._last_save = 0.0

    def start(self) -> None:
        """The reader starts reading: the first save of empty pages is due a second from now."""
        self._last_save = time.monotonic()

    def add(self, checkpoint: Position, counts: dict[int, int]) -> int:
        """Queue the batch read up to ``checkpoint``; its id (for the dispatcher)."""
        batch = _Batch(self._next_id, checkpoint, counts)
        self._next_id += 1
        self._pending.append(batch)
        return batch.id

    def save(self, done: set[int], membership: Membership | None, force: bool) -> Saved | None:
        """Fold the handled batches in, and save if due; what was saved (None: nothing)."""
        self._done |= done
        while self._pending and self._pending[0].id in self._done:
            batch = self._pending.popleft()
            self._done.discard(batch.id)
            counts = dict(self._unsaved.counts) if self._unsaved else {}
            for p, n in batch.counts.items():
                counts[p] = counts.get(p, 0) + n
            self._unsaved = _Unsaved(batch.checkpoint, counts)
        if membership is None or self._unsaved is None:
            return None
        checkpoint, counts = self._unsaved
        if not (any(counts.values()) or force
                or time.monotonic() - self._last_save >= _EMPTY_SAVE_EVERY):
            return None
        owned = set(membership.snapshot())
        counts = {p: n for p, n in counts.items() if p in owned}
        name, group, member = self._key
        saved = self._checkpoints.save(name, group, member, checkpoint, counts)
        self._unsaved = None
        self._last_save = time.monotonic()
        return Saved(checkpoint, set(counts) - saved)
