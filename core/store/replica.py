"""Reads of the global order from a hot standby (DATABASE_READ_URL), with its lag.

``read_all`` (and so readers and consumer groups) reads its pages' rows from
the standby; writes, stream reads and everything that needs read-your-writes
stay on the primary. Checkpoints are saved on the primary.

Why a checkpointed reader on a standby never skips or repeats an event: the
horizon is **not** taken on the standby. A horizon computed from the
standby's own snapshot was tried first and skipped events under load (1 run
in 3 of tests/integration/ops/test_replica.py: a transaction the standby's
snapshot no longer listed as running whose rows its next snapshot did not
show yet). Instead each page reads, on the primary, the horizon
(``write_horizon()``, docs/global-order.md) and then the WAL insert position:
every append transaction below that horizon had finished, so its commit
record lies before that position. The rows below the horizon are read on the
standby only once it has replayed past that position; then it shows exactly
what the primary shows below the horizon.

Why a lagging standby is not served as current: when the standby has not
replayed that far within ``min(EVSTORE_REPLICA_MAX_LAG_SECONDS, 1)`` seconds
the page is empty, **not** ``at_end``, and carries ``lag_bytes`` and
``lag_seconds``. Cost: one small query on the primary per page.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from .. import telemetry
from ..db import Database
from .persistence import START, Position, ReadAllPage
from .reads import COLUMNS, MAX_PAGE, MAX_POSITION, StoreReads, byte_capped

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

    def read_all(self, after: Position | str | None = None, limit: int = 1000,
                 event_types: Sequence[str] | None = None,
                 aggregate_types: Sequence[str] | None = None, check_types: bool = True) -> ReadAllPage:
        """A page of the global order read on the standby, below the *primary's* horizon.

        The horizon is read on the primary with its WAL insert position after
        it; the rows are read on the standby only once it has replayed past
        that position (waiting up to ``min(EVSTORE_REPLICA_MAX_LAG_SECONDS,
        1)`` s). A standby not there yet gives an empty page that is not
        ``at_end``, with its lag: never a stale page presented as the head.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be from 1 to {MAX_PAGE:,} (got {limit})")
        if isinstance(after, str):
            after = Position.parse(after)
        after = after or START
        start = time.perf_counter()
        primary = self.store.db
        with primary.connection() as conn:
            row = conn.execute(primary.sql("ops", "horizon_and_lsn")).fetchone()
        assert row is not None
        horizon, lsn = int(row[0]), str(row[1])
        wait = min(self.store.settings.replica_max_lag_seconds, 1.0)
        if not self.wait_replayed(lsn, wait):
            lag = self.lag_after(lsn)
            time.sleep(STALE_PAUSE)  # a reader polling a stale standby does not spin
            return ReadAllPage([], after, False, "replica", lag.lag_bytes, max(lag.lag_seconds, wait))
        reads = self.reads
        filters, args = reads._filters(event_types, aggregate_types, check_types)
        settings = self.store.settings
        args.update(tx=str(after.transaction_id), pos=after.global_position, limit=limit,
                    max_bytes=settings.max_page_bytes, horizon=str(horizon))
        statement = self.db.sql("store", "read_all", columns=COLUMNS, filters=filters)
        with self.db.connection() as conn, self.db.read_only_snapshot(conn):
            rows = conn.execute(statement, args).fetchall()
        events = [reads.decode_row(r) for r in rows]
        at_end = len(events) < limit and not byte_capped(sum(r[19] for r in rows), settings)
        checkpoint = events[-1].position if events else after
        if at_end:
            checkpoint = max(checkpoint, Position(horizon - 1, MAX_POSITION))
        telemetry.record_read("read_all", time.perf_counter() - start, len(events), "replica")
        return ReadAllPage(events, checkpoint, at_end, "replica", 0, 0.0)
