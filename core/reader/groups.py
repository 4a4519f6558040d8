"""Consumer-group membership: members, heartbeats and shard leases in PostgreSQL.

Every member of a group has a row in ``consumer_members`` that it renews on
each heartbeat; a row whose ``expires_at`` passed belongs to a dead member and
is removed by whichever member notices, which frees its shards. The live
members, sorted by id, split the shards deterministically (shard ``p``
goes to member ``p mod M``), so all members agree on the target without
talking to each other. A member only claims a shard that is free (no
owner, or a lapsed lease), and only releases one after its events in flight
were handled and its checkpoint saved: a shard never has two owners, so
the events of one stream are handled by one member at a time, in order.

A member stops dispatching when its leases may have lapsed (``valid_until``,
kept on the local monotonic clock with a safety margin), even when the
database cannot be reached to tell it so.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from psycopg.rows import dict_row

from ..db import Database
from ..store.persistence import Position

_SAFETY = 0.8  # stop using a lease after this fraction of its time-to-live


@cache
def local_identity() -> str:
    """Host, boot and PID namespace: members with the same identity share PIDs."""
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        parts.append(f"unknown-{os.getpid()}")  # no /proc: never judge other PIDs
    return "|".join(parts)


def process_gone(pid: int) -> bool:
    """True only when we are sure the process no longer runs (or is a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


@dataclass
class Tick:
    """What one heartbeat found."""

    members: list[str]
    target: set[int]
    lost: set[int]
    free: set[int]
    wants_change: bool


@dataclass
class Membership:
    db: Database
    name: str
    group: str
    shards: int
    member_id: str
    ttl: float
    listening: bool
    # shard -> position below which its events were handled (or were never wanted)
    owned: dict[int, Position] = field(default_factory=dict)
    valid_until: float = 0.0
    processed: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def _sql(self, name: str) -> str:
        return self.db.sql("reader", name)

    @property
    def _args(self) -> dict[str, object]:
        return {"name": self.name, "group": self.group, "member": self.member_id, "ttl": self.ttl}

    def join(self) -> None:
        with self.db.connection() as conn:
            conn.execute(self._sql("join_member"), {
                **self._args, "host": socket.gethostname(), "identity": local_identity(),
                "pid": os.getpid(), "listening": self.listening,
            })

    def tick(self) -> Tick:
        """Heartbeat: renew the member and its leases, remove dead members, find the target."""
        with self._lock:
            started = time.monotonic()
            args = self._args
            with self.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                alive = cur.execute(self._sql("heartbeat"), {**args, "processed": self.processed})
                if alive.fetchone() is None:  # we were taken for dead: come back
                    self.join()
                rows = cur.execute(self._sql("members"), args).fetchall()
                dead = [r["member_id"] for r in rows if r["member_id"] != self.member_id
                        and r["identity"] == local_identity() and process_gone(int(r["pid"]))]
                reaped = [r["member_id"] for r in cur.execute(
                    self._sql("reap_members"), {**args, "dead": dead}).fetchall()]
                if reaped:
                    cur.execute(self._sql("free_leases_of"), {**args, "members": reaped})
                held = {int(r["shard"]) for r in cur.execute(self._sql("renew_leases"), args)}
                members = [r["member_id"] for r in cur.execute(self._sql("members"), args)
                           if r["alive"]]
                shard_rows = cur.execute(self._sql("shard_rows"), args).fetchall()
            lost = set(self.owned) - held
            for p in lost:
                del self.owned[p]
            self.valid_until = started + self.ttl * _SAFETY
            if self.member_id not in members:
                members = sorted([*members, self.member_id])
            if self.group:
                me = members.index(self.member_id)
                target = {p for p in range(self.shards) if p % len(members) == me}
            else:  # a reader without a group keeps its lease until it stops
                target = set(range(self.shards))
            free = {int(r["shard"]) for r in shard_rows if r["owner"] is None or not r["leased"]}
            wants = bool(set(self.owned) - target) or bool((target & free) - set(self.owned))
            return Tick(members, target, lost, free, wants)

    def rebalance(self, target: set[int], committed: Position | None) -> set[int]:
        """Release what is not ours, claim what is free of the target; the new shards.

        Call it only with nothing in flight: every owned shard has been
        handled up to ``committed``.
        """
        with self._lock:
            if committed is not None:
                for p, floor in self.owned.items():
                    self.owned[p] = max(floor, committed)
            started = time.monotonic()
            release = sorted(set(self.owned) - target)
            claim = sorted(target - set(self.owned))
            args = self._args
            kept = set(self.owned) - set(release)
            with self.db.connection() as conn:
                if release:
                    conn.execute(self._sql("release_shards"), {**args, "shards": release})
                    for p in release:
                        del self.owned[p]
                got: set[int] = set()
                if claim:
                    rows = conn.execute(
                        self._sql("claim_shards"), {**args, "shards": claim}
                    ).fetchall()
                    for p, tx, pos in rows:
                        self.owned[int(p)] = Position(int(tx), int(pos))
                        got.add(int(p))
                    if not kept:  # every lease we hold was just taken
                        self.valid_until = started + self.ttl * _SAFETY
            return got

    def drop_lost(self, shards: set[int]) -> None:
        with self._lock:
            for p in shards:
                self.owned.pop(p, None)

    def expired(self) -> bool:
        return time.monotonic() > self.valid_until

    def leave(self) -> None:
        """Release every shard and remove the member row."""
        with self._lock:
            args = self._args
            with self.db.connection() as conn:
                if self.owned:
                    conn.execute(self._sql("release_shards"),
                                 {**args, "shards": sorted(self.owned)})
                conn.execute(self._sql("leave_member"), args)
            self.owned.clear()

    def snapshot(self) -> dict[int, Position]:
        with self._lock:
            return dict(self.owned)
