"""The archive catalog (migration 0009): which segment holds which stream positions.

Written by :func:`write_catalog` when a run that deletes its events is
finalized, from the run's items while every archived event is still in
PostgreSQL, in the transaction that marks the run exported: so there is never
a moment when an event has left the store and the catalog does not name it.
Reads that need archived events (``readthrough``) find their segments here
with one index lookup.

Runs completed before migration 0009 have no catalog rows (their items were
removed when they completed); :func:`backfill_catalog` rebuilds their rows
from the segments themselves (fetched, SHA-256 checked against PostgreSQL's
record, every event checksum verified).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

if TYPE_CHECKING:
    import psycopg

    from ..store.persistence import EventStore


@dataclass(frozen=True)
class CatalogEntry:
    first_position: int
    last_position: int
    event_count: int
    min_created_at: datetime
    max_created_at: datetime
    run_id: str
    policy: str
    segment_no: int
    target_url: str
    data_path: str | None
    finished_at: datetime | None


def write_catalog(conn: psycopg.Connection[Any], store: EventStore, run_id: str) -> int:
    """Catalog the run's segments per stream (once; a second call adds nothing)."""
    cur = conn.execute(store.db.sql("archive", "catalog_write"), {"run_id": run_id})
    return cur.rowcount or 0


def stream_catalog(store: EventStore, stream_id: str) -> list[CatalogEntry]:
    """Every archived range of one stream, oldest first."""
    with store.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(store.db.sql("archive", "catalog_of_stream"),
                           {"stream_id": stream_id}).fetchall()
    return [CatalogEntry(**r) for r in rows]


@dataclass(frozen=True)
class MonthStats:
    month: datetime
    live_events: int
    live_bytes: int
    archived_events: int
    archived_bytes: int


def tier_stats(store: EventStore) -> list[MonthStats]:
    """Live and archived event counts and bytes per month."""
    months: dict[datetime, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    with store.db.connection() as conn:
        for month, events, size in conn.execute(store.db.sql("archive", "stats_live")):
            months[month][0:2] = [int(events), int(size or 0)]
        for month, events, size in conn.execute(store.db.sql("archive", "stats_archived")):
            months[month][2:4] = [int(events), int(size or 0)]
    return [MonthStats(m, *v) for m, v in sorted(months.items())]


def backfill_catalog(store: EventStore) -> dict[str, int]:
    """Catalog rows for completed runs made before migration 0009, read from their
    segments on the target; {run_id: rows written}."""
    from .readthrough import fetch_segment_lines
    from .runs import get_run, list_segments

    written: dict[str, int] = {}
    with store.db.connection() as conn:
        runs = [r for (r,) in conn.execute(store.db.sql("archive", "catalog_runs_missing"))]
    for run_id in runs:
        run = get_run(store, run_id)
        count = 0
        for seg in list_segments(store, run_id):
            if seg.data_path is None or seg.sha256 is None or seg.raw_bytes is None:
                continue
            lines = fetch_segment_lines(store.settings, run.target_url, seg.data_path,
                                        seg.sha256, seg.raw_bytes, seg.event_count)
            per_stream: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for line in lines:
                per_stream[line["stream_id"]].append(line)
            with store.db.connection() as conn, conn.transaction():
                for stream_id, items in per_stream.items():
                    conn.execute(store.db.sql("archive", "catalog_insert_row"), {
                        "run_id": run_id, "segment_no": seg.number, "stream_id": stream_id,
                        "first_position": min(i["stream_position"] for i in items),
                        "last_position": max(i["stream_position"] for i in items),
                        "event_count": len(items),
                        "min_global_position": min(i["global_position"] for i in items),
                        "max_global_position": max(i["global_position"] for i in items),
                        "min_created_at": min(i["created_at"] for i in items),
                        "max_created_at": max(i["created_at"] for i in items),
                        "bytes": sum(len(i["event_data"]) + len(i["metadata"]) for i in items),
                    })
                    count += 1
        written[run_id] = count
    return written
