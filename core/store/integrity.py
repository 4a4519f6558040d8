"""What an operator asks of the store: verify the checksums, is it healthy, how big is it.

``verify`` recomputes the checksum of every event of a range of global
positions, a chunk at a time, and reports the mismatches (a payload that does
not even decompress is a mismatch with ``<unreadable>``) instead of raising.
``health`` never raises for a database that is down: it reports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from psycopg.rows import namedtuple_row

from ..errors import StoreUnavailableError
from ..migrations import current_version, latest_version
from .partitions import MonthPartitions, add_months, month_of
from .persistence import (
    ChecksumMismatch,
    EventRecord,
    HealthCheck,
    HealthReport,
    StoreMetrics,
    VerifyReport,
)
from .reads import COLUMNS, MAX_POSITION, StoreReads, record_checksum


def verify(
    reads: StoreReads,
    from_position: int | None,
    to_position: int | None,
    progress: Callable[[int], None] | None,
    chunk: int,
) -> VerifyReport:
    """Recompute the checksum of every event with a global position in the range."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 (got {chunk})")
    low = from_position or 0
    high = to_position if to_position is not None else MAX_POSITION
    statement = reads.db.sql("store", "verify_chunk", columns=COLUMNS)
    checked = 0
    mismatches: list[ChecksumMismatch] = []
    with reads.db.connection() as conn:
        # Named rows (still tuples in COLUMNS order, as decode_row takes them).
        cur = conn.cursor(row_factory=namedtuple_row)
        cursor_from = low - 1
        while True:
            rows: list[Any] = cur.execute(statement, [cursor_from, high, chunk]).fetchall()
            if not rows:
                break
            for row in rows:
                record = _decode_lenient(reads, row)
                computed = record_checksum(record, row.metadata) if record else "<unreadable>"
                if computed != row.checksum:
                    mismatches.append(ChecksumMismatch(
                        row.event_id, row.global_position, row.stream_id, row.checksum, computed
                    ))
            checked += len(rows)
            if progress:
                progress(len(rows))
            cursor_from = rows[-1].global_position
    return VerifyReport(checked, mismatches)


def _decode_lenient(reads: StoreReads, row: tuple[Any, ...]) -> EventRecord | None:
    try:
        return reads.decode_row(row, verify=False)
    except Exception:  # a corrupt compressed payload is reported, not raised
        return None


def health(reads: StoreReads, month_partitions: MonthPartitions) -> HealthReport:
    """The database, the schema's migration and this month's and next month's partitions."""
    db = reads.db
    checks: list[HealthCheck] = []
    try:
        start = time.perf_counter()
        with db.connection() as conn:
            row = conn.execute(db.sql("store", "server_version")).fetchone()
            assert row is not None
            (server,) = row
            latency = (time.perf_counter() - start) * 1000
            checks.append(HealthCheck("database", True, f"PostgreSQL {server}, {latency:.1f} ms"))
            version = current_version(conn, db.schema)
    except StoreUnavailableError as exc:
        return HealthReport([HealthCheck("database", False, str(exc))])
    latest = latest_version()
    checks.append(HealthCheck(
        "schema", version == latest,
        f"schema {db.schema!r} at migration {version} of {latest}"
        + ("" if version == latest else ": run 'evstore init'"),
    ))
    if version:
        now = month_of(datetime.now().astimezone())
        months = {p.month for p in month_partitions.list_all()}
        wanted = [add_months(now, i) for i in range(2)]
        missing = [f"{m.year:04d}-{m.month:02d}" for m in wanted
                   if f"{m.year:04d}-{m.month:02d}" not in months]
        checks.append(HealthCheck(
            "partitions", not missing,
            "this month and next are in place" if not missing
            else f"missing partitions for {', '.join(missing)}: run 'evstore partitions ensure'",
        ))
    return HealthReport(checks)


def metrics(reads: StoreReads, month_partitions: MonthPartitions) -> StoreMetrics:
    """Counts and sizes of the events, streams and month partitions."""
    db = reads.db
    with db.connection() as conn:
        totals = conn.execute(db.sql("store", "metrics_totals")).fetchone()
        by_type = dict(conn.execute(db.sql("store", "metrics_events_by_type")).fetchall())
        streams = conn.execute(db.sql("store", "metrics_streams")).fetchone()
    assert totals is not None and streams is not None
    (events, original_bytes, stored_bytes, compressed) = totals
    (stream_count,) = streams
    parts = month_partitions.list_all()
    return StoreMetrics(
        events=int(events), streams=int(stream_count), partitions=len(parts),
        total_bytes=sum(p.total_bytes for p in parts),
        original_payload_bytes=int(original_bytes), stored_payload_bytes=int(stored_bytes),
        compressed_events=int(compressed), events_by_type={k: int(v) for k, v in by_type.items()},
    )
