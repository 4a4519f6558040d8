"""Reads of the global order from a hot standby (DATABASE_READ_URL), with its lag.

``read_all`` (and so readers and consumer groups) reads its pages from the
standby; writes, stream reads and everything that needs read-your-writes stay
on the primary. Checkpoints are saved on the primary.

Why a checkpointed reader on a standby never skips or repeats an event: the
horizon read on the standby is the oldest transaction the standby knows to be
running (every xid below its snapshot's xmax that has not committed or
aborted in the WAL replayed so far is in its snapshot: hot standby's
KnownAssignedXids). Every event of a transaction below that horizon is
already replayed and visible, and no transaction below it can commit later:
the same argument as on the primary (docs/global-order.md), only more
conservative (the standby cannot see which transactions hold the append lock,
so any running transaction of the primary holds its horizon back).

Why a lagging standby is not served as current: before each page the
primary's flushed WAL position is read; the page is then read from the
standby with the standby's replayed position. When the standby had not yet
replayed what the primary had flushed, the page carries ``lag_bytes`` and
``lag_seconds`` (since the standby's last replayed commit), and when that lag
is more than ``EVSTORE_REPLICA_MAX_LAG_SECONDS`` the page is **not**
``at_end``: a reader does not take the standby's end for the head.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from .. import telemetry
from ..db import Database
from .persistence import ReadAllPage
from .reads import StoreReads

STALE_PAUSE = 0.05  # seconds a reader waits on an empty page of a stale standby


class _ReplicaView:
    """The store as StoreReads sees it, with the standby's database."""

    def __init__(self, store: Any, db: Database) -> None:
        self._store = store
        self.db = db

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@dataclasses.dataclass(frozen=True)
class ReplicaLag:
    lag_bytes: int
    lag_seconds: float


class ReplicaReads:
    def __init__(self, store: Any, url: str) -> None:
        self.store = store
        self.db = Database.open(url, store.schema, pool_size=store.settings.pool_size)
        # (the store as StoreReads sees it: every attribute the store's, the database the standby's)
        self.reads = StoreReads(_ReplicaView(store, self.db))  # type: ignore[arg-type]

    def close(self) -> None:
        self.db.close()

    def lag_after(self, primary_lsn: str) -> ReplicaLag:
        """How far the standby is behind ``primary_lsn`` (bytes; seconds since its last replay)."""
        with self.db.connection() as conn:
            row = conn.execute(self.db.sql("ops", "replica_lag"), [primary_lsn]).fetchone()
        assert row is not None
        behind, age = int(row[0] or 0), float(row[1] or 0.0)
        return ReplicaLag(max(behind, 0), age if behind > 0 else 0.0)

    def primary_lsn(self) -> str:
        db = self.store.db
        with db.connection() as conn:
            row = conn.execute(db.sql("ops", "current_wal_lsn")).fetchone()
        assert row is not None
        return str(row[0])

    def primary_insert_lsn(self) -> str:
        """A WAL position after every commit visible on the primary now (a job's plan records it)."""
        db = self.store.db
        with db.connection() as conn:
            row = conn.execute(db.sql("ops", "current_wal_insert_lsn")).fetchone()
        assert row is not None
        return str(row[0])

    def wait_replayed(self, lsn: str, timeout: float = 2.0) -> bool:
        """Whether the standby has replayed up to ``lsn`` (waiting up to ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.db.connection() as conn:
                row = conn.execute(self.db.sql("ops", "replayed_past"), [lsn]).fetchone()
            if row is not None and row[0]:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def read_all(self, *args: Any, **kwargs: Any) -> ReadAllPage:
        start = time.perf_counter()
        head = self.primary_lsn()
        page = self.reads.read_all(*args, **kwargs)
        lag = self.lag_after(head)
        telemetry.record_read("read_all", time.perf_counter() - start, len(page.events), "replica")
        stale = lag.lag_seconds > self.store.settings.replica_max_lag_seconds
        if stale and not page.events:
            time.sleep(STALE_PAUSE)  # a reader polling a stale standby does not spin
        return dataclasses.replace(page, at_end=page.at_end and not stale, source="replica",
                                   lag_bytes=lag.lag_bytes, lag_seconds=lag.lag_seconds)
