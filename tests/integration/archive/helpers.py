"""Shared helpers of the archive tests: events spread over past months, raw rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from evstore.core.store.partitions import add_months, month_of
from psycopg.rows import namedtuple_row

from evstore import EventMetadata, EventRecord

# Every column of an event as PostgreSQL stores it; jsonb as text, so equal
# rows are equal byte for byte.
RAW = (
    "SELECT event_id, aggregate_id, aggregate_type, event_type, event_version, "
    "aggregate_version, stream_id, stream_position, global_position, transaction_id::text, "
    "event_data::text, payload, metadata::text, created_at, stored_at, status, compression, "
    "encryption, checksum, original_size, stored_size FROM {table} ORDER BY global_position"
)


def month_start(months_ago: int, now: datetime | None = None) -> datetime:
    m = add_months(month_of(now or datetime.now(UTC)), -months_ago)
    return datetime(m.year, m.month, 1, tzinfo=UTC)


def populate(store: Any, months_ago: list[int], streams: int = 3, per_stream: int = 10,
             prefix: str = "user", big: bool = False) -> int:
    """Events in each listed past month (0 = this month); the number appended."""
    total = 0
    for ago in months_ago:
        base = month_start(ago) + timedelta(days=1, hours=12)
        for s in range(streams):
            events = [
                EventRecord(
                    aggregate_id=f"{prefix}-{ago}-{s}", aggregate_type="User",
                    event_type="ProfileUpdated",
                    event_data={"n": i, "email": f"u{s}@example.com", "ratio": 0.1 * i,
                                "blob": "x" * (3000 if big and i % 2 else 10),
                                "nested": {"name": "Ada", "tags": ["a", "b"]}},
                    metadata=EventMetadata(user_id=f"{prefix}-{ago}-{s}", source="test"),
                    created_at=base + timedelta(minutes=i),
                )
                for i in range(per_stream)
            ]
            store.append_events(f"{prefix}-{ago}-{s}", events)
            total += per_stream
    return total


def raw_rows(store: Any) -> list[Any]:
    """Every event row (named tuples: ``row.stream_position``), in the global order."""
    with store.connection() as conn, conn.cursor(row_factory=namedtuple_row) as cur:
        return list(cur.execute(RAW.format(table=store.table("events"))))


def count(store: Any, table: str = "events") -> int:
    with store.connection() as conn:
        (n,) = conn.execute(f"SELECT count(*) FROM {store.table(table)}").fetchone()
        return int(n)


def partition_names(store: Any) -> list[str]:
    return [p.name for p in store.list_partitions()]
