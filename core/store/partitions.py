"""Month partitions of the events table: names, bounds, creation on demand.

The events table is partitioned by month of ``created_at`` (the event's own
time). An append makes sure the month partitions of its events exist first;
the months known to exist are cached, so the catalogue is asked once a month,
not on every append. Archival may drop a month partition behind the cache's
back: the append then sees "no partition for row", forgets the month and
creates it again.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from datetime import UTC, date, datetime

import psycopg
from psycopg import sql

from ..db import Database
from .persistence import PartitionInfo

_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


def month_of(ts: datetime) -> date:
    utc = ts.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + (month.month - 1) + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    """The table name of a month partition: ``events_yYYYYmMM``."""
    return f"events_y{month.year:04d}m{month.month:02d}"


def create_month_partition(db: Database, conn: psycopg.Connection, month: date) -> bool:
    """Create the month partition if it is missing; True when created.

    Through the store's SECURITY DEFINER function (migration 0006), under an
    advisory lock, so a least-privilege writer can create next month's
    partition and concurrent writers that need it do not race.
    """
    row = conn.execute(db.sql("store", "create_month_partition"), [month]).fetchone()
    assert row is not None
    return bool(row[0])


def list_month_partitions(db: Database, conn: psycopg.Connection, exact: bool = False) -> list[PartitionInfo]:
    """The month partitions of the events table, oldest first (row counts estimated unless exact)."""
    rows = conn.execute(db.sql("store", "month_partitions"), [db.schema]).fetchall()
    out = []
    for name, bound, estimate, size in rows:
        m = _BOUND.search(bound or "")
        if not m:
            continue
        start = datetime.fromisoformat(m.group(1)).astimezone(UTC)
        end = datetime.fromisoformat(m.group(2)).astimezone(UTC)
        count = estimate
        if exact:
            counted = conn.execute(db.sql(
                "store", "month_partition_count", partition=sql.Identifier(name).as_string(None)
            )).fetchone()
            assert counted is not None
            (count,) = counted
        out.append(
            PartitionInfo(
                name=name,
                month=f"{start.year:04d}-{start.month:02d}",
                range_start=start,
                range_end=end,
                row_count=int(count),
                total_bytes=int(size),
            )
        )
    return sorted(out, key=lambda p: p.range_start)


class MonthPartitions:
    """The month partitions of one store, with the months known to exist cached."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._known: set[date] = set()
        self._lock = threading.Lock()

    def ensure(self, months: Iterable[date]) -> list[date]:
        """Create the month partitions of these months where missing; the ones created."""
        with self._lock:
            missing = set(months) - self._known
        created = []
        if missing:
            with self.db.connection() as conn:
                for month in sorted(missing):
                    if create_month_partition(self.db, conn, month):
                        created.append(month)
            with self._lock:
                self._known.update(missing)
        return created

    def create_ahead(self, months_ahead: int = 3, now: datetime | None = None) -> list[date]:
        """The current month's partition and ``months_ahead`` after it (checked in the catalogue)."""
        first = month_of(now or datetime.now().astimezone())
        months = {add_months(first, i) for i in range(months_ahead + 1)}
        self.forget(months)
        return self.ensure(months)

    def forget(self, months: Iterable[date]) -> None:
        with self._lock:
            self._known.difference_update(months)

    def list_all(self, exact: bool = False) -> list[PartitionInfo]:
        with self.db.connection() as conn:
            return list_month_partitions(self.db, conn, exact=exact)
