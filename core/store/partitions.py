"""Monthly partitions of the events table: names, bounds, creation on demand."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from datetime import UTC, date, datetime

import psycopg
from psycopg import sql

from ..sql import query
from .persistence import PartitionInfo

_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


def month_of(ts: datetime) -> date:
    utc = ts.astimezone(UTC)
    return date(utc.year, utc.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + (month.month - 1) + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"events_y{month.year:04d}m{month.month:02d}"


def _bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    nxt = add_months(month, 1)
    return start, datetime(nxt.year, nxt.month, 1, tzinfo=UTC)


def create_partition(conn: psycopg.Connection, schema: str, month: date) -> bool:
    """Create the month's partition if it is missing; True when created.

    Runs in its own transaction under an advisory lock, so concurrent writers
    that need the same new month do not race each other's CREATE.
    """
    start, end = _bounds(month)
    name = partition_name(month)
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"evstore-partitions:{schema}"]
        )
        exists = conn.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            [schema, name],
        ).fetchone()
        if exists:
            return False
        conn.execute(
            sql.SQL("CREATE TABLE {}.{} PARTITION OF {}.events FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(schema),
                sql.Identifier(name),
                sql.Identifier(schema),
                sql.Literal(start),
                sql.Literal(end),
            )
        )
    return True


class PartitionCache:
    """Months known to have a partition, so appends check the catalogue once a month."""

    def __init__(self) -> None:
        self._known: set[date] = set()
        self._lock = threading.Lock()

    def missing(self, months: Iterable[date]) -> set[date]:
        with self._lock:
            return set(months) - self._known

    def add(self, months: Iterable[date]) -> None:
        with self._lock:
            self._known.update(months)

    def forget(self, months: Iterable[date]) -> None:
        with self._lock:
            self._known.difference_update(months)

    def clear(self) -> None:
        with self._lock:
            self._known.clear()


def list_partitions(conn: psycopg.Connection, schema: str, exact: bool = False) -> list[PartitionInfo]:
    rows = conn.execute(query("partitions", schema), [schema]).fetchall()
    out = []
    for name, bound, estimate, size in rows:
        m = _BOUND.search(bound or "")
        if not m:
            continue
        start = datetime.fromisoformat(m.group(1)).astimezone(UTC)
        end = datetime.fromisoformat(m.group(2)).astimezone(UTC)
        count = estimate
        if exact:
            count = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
            ).fetchone()[0]  # type: ignore[index]
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
