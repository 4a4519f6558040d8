"""Saved reader checkpoints: one row per (name, consumer group, partition).

A reader saves as it goes; only the member that owns a partition's lease moves
its checkpoint (the save is fenced on the owner), and never backwards. The
group's checkpoint shown to operators is the lowest of its partitions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import ConfigurationError, ConsumerBusyError, ConsumerNotFoundError
from ..sql import sql_from
from ..store.persistence import START, Position
from ..store.postgres import MAX_POSITION, PostgreSQLEventStore

LAG_CAP = 1_000_000


def _q(store: PostgreSQLEventStore, name: str) -> str:
    return sql_from("consumers.sql", name, store.schema)


@dataclass(frozen=True)
class PartitionCheckpoint:
    partition: int
    partition_count: int
    position: Position
    owner: str | None
    leased: bool
    updated_at: datetime
    events_processed: int


@dataclass(frozen=True)
class GroupStatus:
    """What ``evstore consumers`` shows for one checkpoint name and group."""

    checkpoint_name: str
    consumer_group: str
    partitions: int
    checkpoint: Position  # the lowest partition checkpoint
    owners: int  # members holding a live lease
    members: int  # live members
    events_processed: int
    updated_at: datetime
    lag_events: int
    lag_capped: bool  # lag_events is a lower bound (LAG_CAP reached)
    lag_seconds: float
    event_types: list[str] | None
    aggregate_types: list[str] | None


class CheckpointStore:
    def __init__(self, store: PostgreSQLEventStore) -> None:
        self.store = store

    def ensure(
        self, name: str, group: str, count: int,
        event_types: Sequence[str] | None = None, aggregate_types: Sequence[str] | None = None,
    ) -> None:
        """Create the partition rows; refuse a partition count that differs from the group's."""
        args = {"name": name, "group": group, "count": count}
        with self.store.connection() as conn, conn.transaction():
            conn.execute(_q(self.store, "ensure_partitions"), args)
            counts = {r[0] for r in conn.execute(
                f"SELECT DISTINCT partition_count FROM {self.store.table('stream_checkpoints')} "
                "WHERE checkpoint_name = %(name)s AND consumer_group = %(group)s", args)}
            if counts != {count}:
                raise ConfigurationError(
                    f"consumer {name!r} group {group!r} has {sorted(counts)} partitions, "
                    f"not {count}: keep its partition count, or delete it with "
                    f"'evstore consumers delete'"
                )
            conn.execute(_q(self.store, "set_filters"), {
                **args,
                "event_types": list(event_types) if event_types else None,
                "aggregate_types": list(aggregate_types) if aggregate_types else None,
            })

    def partitions(self, name: str, group: str = "") -> list[PartitionCheckpoint]:
        with self.store.connection() as conn:
            rows = conn.execute(
                _q(self.store, "partition_rows"), {"name": name, "group": group}
            ).fetchall()
        return [
            PartitionCheckpoint(r[0], r[1], Position(int(r[2]), int(r[3])), r[4], bool(r[6]),
                                r[7], int(r[8]))
            for r in rows
        ]

    def position(self, name: str, group: str = "") -> Position | None:
        """The group's checkpoint (its lowest partition's); None if it was never saved."""
        parts = self.partitions(name, group)
        return min(p.position for p in parts) if parts else None

    def save(
        self, name: str, group: str, member: str, position: Position, counts: Mapping[int, int]
    ) -> set[int]:
        """Move the given partitions to ``position``; the ones this member still owned."""
        if not counts:
            return set()
        parts = sorted(counts)
        with self.store.connection() as conn:
            rows = conn.execute(_q(self.store, "save_checkpoint"), {
                "name": name, "group": group, "member": member,
                "tx": position.transaction_id, "pos": position.global_position,
                "partitions": parts, "counts": [counts[p] for p in parts],
            }).fetchall()
        return {int(r[0]) for r in rows}

    def reset(self, name: str, group: str, position: Position, force: bool = False) -> int:
        """Set every partition of a checkpoint to ``position``; the number of partitions."""
        parts = self.partitions(name, group)
        if not parts:
            raise ConsumerNotFoundError(name, group)
        busy = sorted({p.owner for p in parts if p.leased and p.owner})
        if busy and not force:
            raise ConsumerBusyError(name, group, busy)
        with self.store.connection() as conn:
            rows = conn.execute(_q(self.store, "reset_checkpoint"), {
                "name": name, "group": group,
                "tx": position.transaction_id, "pos": position.global_position,
            }).fetchall()
        return len(rows)

    def delete(self, name: str, group: str = "") -> int:
        with self.store.connection() as conn:
            cur = conn.execute(_q(self.store, "delete_checkpoint"), {"name": name, "group": group})
            return int(cur.rowcount)

    # -- positions --------------------------------------------------------------

    def horizon(self) -> int:
        """The oldest transaction still running: every lower one has finished."""
        with self.store.connection() as conn:
            row = conn.execute(_q(self.store, "horizon")).fetchone()
        assert row is not None
        return int(row[0])

    def head(self) -> Position:
        """A position after every event of every transaction finished by now."""
        return Position(self.horizon() - 1, MAX_POSITION)

    def streaming_start(self) -> tuple[Position, set[int]]:
        """Where "from now on" starts: a position, and transactions above it to skip."""
        with self.store.connection() as conn:
            row = conn.execute(_q(self.store, "streaming_start")).fetchone()
        assert row is not None
        return Position(int(row[0]) - 1, MAX_POSITION), {int(t) for t in row[1]}

    def last_committed(self) -> Position | None:
        """The position of the last event committed so far (None: no events)."""
        with self.store.connection() as conn:
            row = conn.execute(_q(self.store, "head_position")).fetchone()
        return Position(int(row[0]), int(row[1])) if row else None

    def position_at(self, at: datetime) -> Position:
        """A checkpoint just before the first event stored at or after ``at``."""
        if at.tzinfo is None:
            raise ValueError(f"time {at.isoformat()} needs a time zone (e.g. +00:00 or Z)")
        with self.store.connection() as conn:
            row = conn.execute(_q(self.store, "first_position_stored_since"), {"at": at}).fetchone()
        if row is None:
            return self.head()
        tx, pos = int(row[0]), int(row[1])
        return Position(tx, pos - 1) if pos > 0 else Position(max(tx - 1, 0), MAX_POSITION)

    def committed_after(self, position: Position) -> bool:
        with self.store.connection() as conn:
            row = conn.execute(_q(self.store, "committed_after"), {
                "tx": str(position.transaction_id), "pos": position.global_position,
            }).fetchone()
        return bool(row and row[0])

    # -- operators' view --------------------------------------------------------

    def lag(self, name: str, group: str = "", cap: int = LAG_CAP) -> tuple[int, float]:
        """(events not yet handled, age in seconds of the oldest one) for a checkpoint."""
        parts = self.partitions(name, group)
        if not parts:
            raise ConsumerNotFoundError(name, group)
        return self._lag(name, group, parts, cap, *self._filters(name, group))

    def _filters(self, name: str, group: str) -> tuple[Any, Any]:
        with self.store.connection() as conn:
            row = conn.execute(
                _q(self.store, "partition_rows"), {"name": name, "group": group}
            ).fetchone()
        return (row[9], row[10]) if row else (None, None)

    def _lag(
        self, name: str, group: str, parts: list[PartitionCheckpoint], cap: int,
        event_types: list[str] | None, aggregate_types: list[str] | None,
    ) -> tuple[int, float]:
        low = min(p.position for p in parts) if parts else START
        with self.store.connection() as conn:
            row = conn.execute(_q(self.store, "lag"), {
                "name": name, "group": group, "cap": cap,
                "tx": str(low.transaction_id), "pos": low.global_position,
                "event_types": event_types, "aggregate_types": aggregate_types,
            }).fetchone()
        assert row is not None
        return int(row[0]), max(float(row[1] or 0.0), 0.0)

    def groups(self, with_lag: bool = True) -> list[GroupStatus]:
        with self.store.connection() as conn:
            rows = conn.execute(_q(self.store, "all_checkpoints")).fetchall()
            members = conn.execute(_q(self.store, "all_members")).fetchall()
        live: dict[tuple[str, str], int] = {}
        for m in members:
            live[(m[0], m[1])] = live.get((m[0], m[1]), 0) + 1
        by_key: dict[tuple[str, str], list[Any]] = {}
        for r in rows:
            by_key.setdefault((r[0], r[1]), []).append(r)
        out = []
        for (name, group), rs in by_key.items():
            parts = [
                PartitionCheckpoint(r[2], r[3], Position(int(r[4]), int(r[5])), r[6], bool(r[7]),
                                    r[8], int(r[9]))
                for r in rs
            ]
            lag_events, lag_seconds = (
                self._lag(name, group, parts, LAG_CAP, rs[0][10], rs[0][11]) if with_lag
                else (0, 0.0)
            )
            out.append(GroupStatus(
                checkpoint_name=name, consumer_group=group, partitions=rs[0][3],
                checkpoint=min(p.position for p in parts),
                owners=len({p.owner for p in parts if p.leased and p.owner}),
                members=live.get((name, group), 0),
                events_processed=sum(p.events_processed for p in parts),
                updated_at=max(p.updated_at for p in parts),
                lag_events=lag_events, lag_capped=lag_events >= LAG_CAP,
                lag_seconds=lag_seconds, event_types=rs[0][10], aggregate_types=rs[0][11],
            ))
        return out
