"""Consumer-group membership: members, heartbeats and partition leases in PostgreSQL.

Every member of a group has a row in ``consumer_members`` that it renews on
each heartbeat; a row whose ``expires_at`` passed belongs to a dead member and
is removed by whichever member notices, which frees its partitions. The live
members, sorted by id, split the partitions deterministically (partition ``p``
goes to member ``p mod M``), so all members agree on the target without
talking to each other. A member only claims a partition that is free (no
owner, or a lapsed lease), and only releases one after its events in flight
were handled and its checkpoint saved: a partition never has two owners, so
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

from ..sql import sql_from
from ..store.persistence import Position
from ..store.postgres import PostgreSQLEventStore

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
    store: PostgreSQLEventStore
    name: str
    group: str
    partitions: int
    member_id: str
    ttl: float
    listening: bool
    # partition -> position below which its events were handled (or were never wanted)
    owned: dict[int, Position] = field(default_factory=dict)
    valid_until: float = 0.0
    processed: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def _q(self, name: str) -> str:
        return sql_from("consumers.sql", name, self.store.schema)

    @property
    def _args(self) -> dict[str, object]:
        return {"name": self.name, "group": self.group, "member": self.member_id, "ttl": self.ttl}

    def join(self) -> None:
        with self.store.connection() as conn:
            conn.execute(self._q("join_member"), {
                **self._args, "host": socket.gethostname(), "identity": local_identity(),
                "pid": os.getpid(), "listening": self.listening,
            })

    def tick(self) -> Tick:
        """Heartbeat: renew the member and its leases, remove dead members, find the target."""
        with self._lock:
            started = time.monotonic()
            args = self._args
            with self.store.connection() as conn:
                alive = conn.execute(self._q("heartbeat"), {**args, "processed": self.processed})
                if alive.fetchone() is None:  # we were taken for dead: come back
                    self.join()
                rows = conn.execute(self._q("members"), args).fetchall()
                dead = [r[0] for r in rows if r[0] != self.member_id
                        and r[2] == local_identity() and process_gone(int(r[3]))]
                reaped = [r[0] for r in conn.execute(
                    self._q("reap_members"), {**args, "dead": dead}).fetchall()]
                if reaped:
                    conn.execute(self._q("free_leases_of"), {**args, "members": reaped})
                held = {int(r[0]) for r in conn.execute(self._q("renew_leases"), args)}
                members = [r[0] for r in conn.execute(self._q("members"), args) if r[9]]
                parts = conn.execute(self._q("partition_rows"), args).fetchall()
            lost = set(self.owned) - held
            for p in lost:
                del self.owned[p]
            self.valid_until = started + self.ttl * _SAFETY
            if self.member_id not in members:
                members = sorted([*members, self.member_id])
            if self.group:
                me = members.index(self.member_id)
                target = {p for p in range(self.partitions) if p % len(members) == me}
            else:  # a reader without a group keeps its lease until it stops
                target = set(range(self.partitions))
            free = {int(r[0]) for r in parts if r[4] is None or not r[6]}
            wants = bool(set(self.owned) - target) or bool((target & free) - set(self.owned))
            return Tick(members, target, lost, free, wants)

    def rebalance(self, target: set[int], committed: Position | None) -> set[int]:
        """Release what is not ours, claim what is free of the target; the new partitions.

        Call it only with nothing in flight: every owned partition has been
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
            with self.store.connection() as conn:
                if release:
                    conn.execute(self._q("release_partitions"), {**args, "partitions": release})
                    for p in release:
                        del self.owned[p]
                got: set[int] = set()
                if claim:
                    rows = conn.execute(
                        self._q("claim_partitions"), {**args, "partitions": claim}
                    ).fetchall()
                    for p, tx, pos in rows:
                        self.owned[int(p)] = Position(int(tx), int(pos))
                        got.add(int(p))
                    if not kept:  # every lease we hold was just taken
                        self.valid_until = started + self.ttl * _SAFETY
            return got

    def drop_lost(self, partitions: set[int]) -> None:
        with self._lock:
            for p in partitions:
                self.owned.pop(p, None)

    def expired(self) -> bool:
        return time.monotonic() > self.valid_until

    def leave(self) -> None:
        """Release every partition and remove the member row."""
        with self._lock:
            args = self._args
            with self.store.connection() as conn:
                if self.owned:
                    conn.execute(self._q("release_partitions"),
                                 {**args, "partitions": sorted(self.owned)})
                conn.execute(self._q("leave_member"), args)
            self.owned.clear()

    def snapshot(self) -> dict[int, Position]:
        with self._lock:
            return dict(self.owned)
