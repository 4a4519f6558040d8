"""Saved reader checkpoints: one row per (name, consumer group, shard).

A reader saves as it goes; only the member that owns a shard's lease moves
its checkpoint (the save is fenced on the owner), and never backwards. The
group's checkpoint shown to operators is the lowest of its shards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from ..db import Database
from ..errors import ConfigurationError, ConsumerBusyError, ConsumerNotFoundError
from ..store.persistence import START, EventStore, Position
from ..store.reads import MAX_POSITION

LAG_CAP = 1_000_000


@dataclass(frozen=True)
class ShardCheckpoint:
    """One shard's saved checkpoint and lease.

    ``partition`` and ``partition_count`` are the shard and the group's shard
    count; they keep these names because ``evstore consumers show --json``
    prints the fields under them.
    """

    partition: int
    partition_count: int
    position: Position
    owner: str | None
    leased: bool
    updated_at: datetime
    events_processed: int

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> ShardCheckpoint:
        """From a ``shard_rows`` or ``all_checkpoints`` row (dict_row)."""
        return cls(row["shard"], row["shard_count"],
                   Position(int(row["transaction_id"]), int(row["global_position"])),
                   row["owner"], bool(row["leased"]), row["updated_at"],
                   int(row["events_processed"]))


def _leaseholders(shards: list[ShardCheckpoint]) -> set[str]:
    """The members holding a live lease on some of these shards."""
    return {s.owner for s in shards if s.leased and s.owner}


@dataclass(frozen=True)
class GroupStatus:
    """What ``evstore consumers`` shows for one checkpoint name and group."""

    checkpoint_name: str
    consumer_group: str
    partitions: int  # the shard count (the name ``evstore consumers --json`` prints)
    checkpoint: Position  # the lowest shard checkpoint
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
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.db: Database = store.db

    def _sql(self, name: str) -> str:
        return self.db.sql("reader", name)

    def ensure(
        self, name: str, group: str, count: int,
        event_types: Sequence[str] | None = None, aggregate_types: Sequence[str] | None = None,
    ) -> None:
        """Create the shard rows; refuse a shard count that differs from the group's."""
        args = {"name": name, "group": group, "count": count}
        with self.db.connection() as conn, conn.transaction():
            conn.execute(self._sql("ensure_shards"), args)
            counts = {c for (c,) in conn.execute(self._sql("shard_counts"), args)}
            if counts != {count}:
                raise ConfigurationError(
                    f"consumer {name!r} group {group!r} has {sorted(counts)} shards, "
                    f"not {count}: keep its shard count, or delete it with "
                    f"'evstore consumers delete'"
                )
            conn.execute(self._sql("set_filters"), {
                **args,
                "event_types": list(event_types) if event_types else None,
                "aggregate_types": list(aggregate_types) if aggregate_types else None,
            })

    def _shard_rows(self, name: str, group: str) -> list[dict[str, Any]]:
        with self.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(self._sql("shard_rows"), {"name": name, "group": group}).fetchall()

    def shards(self, name: str, group: str = "") -> list[ShardCheckpoint]:
        """Every shard of a checkpoint, in order (empty: never saved)."""
        return [ShardCheckpoint.of(r) for r in self._shard_rows(name, group)]


    def position(self, name: str, group: str = "") -> Position | None:
        """The group's checkpoint (its lowest shard's); None if it was never saved."""
        shards = self.shards(name, group)
        return min(s.position for s in shards) if shards else None

    def save(
        self, name: str, group: str, member: str, position: Position, counts: Mapping[int, int]
    ) -> set[int]:
        """Move the given shards to ``position``; the ones this member still owned."""
        if not counts:
            return set()
        shards = sorted(counts)
        with self.db.connection() as conn:
            rows = conn.execute(self._sql("save_checkpoint"), {
                "name": name, "group": group, "member": member,
                "tx": position.transaction_id, "pos": position.global_position,
                "shards": shards, "counts": [counts[s] for s in shards],
            }).fetchall()
        return {int(shard) for (shard,) in rows}

    def reset(self, name: str, group: str, position: Position, force: bool = False) -> int:
        """Set every shard of a checkpoint to ``position``; the number of shards."""
        shards = self.shards(name, group)
        if not shards:
            raise ConsumerNotFoundError(name, group)
        busy = sorted(_leaseholders(shards))
        if busy and not force:
            raise ConsumerBusyError(name, group, busy)
        with self.db.connection() as conn:
            rows = conn.execute(self._sql("reset_checkpoint"), {
                "name": name, "group": group,
                "tx": position.transaction_id, "pos": position.global_position,
            }).fetchall()
        return len(rows)

    def delete(self, name: str, group: str = "") -> int:
        with self.db.connection() as conn:
            cur = conn.execute(self._sql("delete_checkpoint"), {"name": name, "group": group})
            return int(cur.rowcount)

    # -- positions --------------------------------------------------------------

    def _one(self, name: str, args: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        """The first row of a named query (None: no row)."""
        with self.db.connection() as conn:
            return conn.execute(self._sql(name), args).fetchone()

    def horizon(self) -> int:
        """The oldest transaction still running: every lower one has finished."""
        row = self._one("horizon")
        assert row is not None
        (xmin,) = row
        return int(xmin)

    def head(self) -> Position:
        """A position after every event of every transaction finished by now."""
        return Position(self.horizon() - 1, MAX_POSITION)

    def streaming_start(self) -> tuple[Position, set[int]]:
        """Where "from now on" starts: a position, and transactions above it to skip."""
        row = self._one("streaming_start")
        assert row is not None
        xmin, committed = row
        return Position(int(xmin) - 1, MAX_POSITION), {int(t) for t in committed}

    def last_committed(self) -> Position | None:
        """The position of the last event committed so far (None: no events)."""
        row = self._one("head_position")
        if row is None:
            return None
        tx, pos = row
        return Position(int(tx), int(pos))

    def position_at(self, at: datetime) -> Position:
        """A checkpoint just before the first event stored at or after ``at``."""
        if at.tzinfo is None:
            raise ValueError(f"time {at.isoformat()} needs a time zone (e.g. +00:00 or Z)")
        row = self._one("first_position_stored_since", {"at": at})
        if row is None:
            return self.head()
        tx, pos = (int(v) for v in row)
        return Position(tx, pos - 1) if pos > 0 else Position(max(tx - 1, 0), MAX_POSITION)

    def committed_after(self, position: Position) -> bool:
        row = self._one("committed_after", {
            "tx": str(position.transaction_id), "pos": position.global_position,
        })
        if row is None:
            return False
        (found,) = row
        return bool(found)

    # -- operators' view --------------------------------------------------------

    def lag(self, name: str, group: str = "", cap: int = LAG_CAP) -> tuple[int, float]:
        """(events not yet handled, age in seconds of the oldest one) for a checkpoint."""
        rows = self._shard_rows(name, group)
        if not rows:
            raise ConsumerNotFoundError(name, group)
        shards = [ShardCheckpoint.of(r) for r in rows]
        return self._lag(name, group, shards, cap, rows[0]["event_types"],
                         rows[0]["aggregate_types"])

    def _lag(
        self, name: str, group: str, shards: list[ShardCheckpoint], cap: int,
        event_types: list[str] | None, aggregate_types: list[str] | None,
    ) -> tuple[int, float]:
        low = min(s.position for s in shards) if shards else START
        row = self._one("lag", {
            "name": name, "group": group, "cap": cap,
            "tx": str(low.transaction_id), "pos": low.global_position,
            "event_types": event_types, "aggregate_types": aggregate_types,
        })
        assert row is not None
        count, oldest_age = row
        return int(count), max(float(oldest_age or 0.0), 0.0)

    def groups(self, with_lag: bool = True) -> list[GroupStatus]:
        with self.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(self._sql("all_checkpoints")).fetchall()
            members = cur.execute(self._sql("all_members")).fetchall()
        live: dict[tuple[str, str], int] = {}
        for m in members:
            key = (m["checkpoint_name"], m["consumer_group"])
            live[key] = live.get(key, 0) + 1
        by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in rows:
            by_key.setdefault((r["checkpoint_name"], r["consumer_group"]), []).append(r)
        out = []
        for (name, group), rs in by_key.items():
            shards = [ShardCheckpoint.of(r) for r in rs]
            first = rs[0]
            lag_events, lag_seconds = (
                self._lag(name, group, shards, LAG_CAP, first["event_types"],
                          first["aggregate_types"]) if with_lag
                else (0, 0.0)
            )
            out.append(GroupStatus(
                checkpoint_name=name, consumer_group=group, partitions=first["shard_count"],
                checkpoint=min(s.position for s in shards),
                owners=len(_leaseholders(shards)),
                members=live.get((name, group), 0),
                events_processed=sum(s.events_processed for s in shards),
                updated_at=max(s.updated_at for s in shards),
                lag_events=lag_events, lag_capped=lag_events >= LAG_CAP,
                lag_seconds=lag_seconds, event_types=first["event_types"],
                aggregate_types=first["aggregate_types"],
            ))
        return out
