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

from .. import checksums, codecs
from ..errors import IntegrityError, StoreUnavailableError
from ..keys import UnknownKeyError
from ..migrations import current_version, latest_version
from .partitions import MonthPartitions, add_months, month_of
from .persistence import (
    ChecksumMismatch,
    HealthCheck,
    HealthReport,
    StoreMetrics,
    VerifyReport,
)
from .reads import COLUMNS, LEGACY, MAX_POSITION, StoreReads, record_message


def verify(
    reads: StoreReads,
    from_position: int | None,
    to_position: int | None,
    progress: Callable[[int], None] | None,
    chunk: int,
    upgrade: bool = False,
) -> VerifyReport:
    """Check the checksum of every event with a global position in the range.

    A mismatch is reported, not raised: a changed event (``<does not match>``),
    a payload that does not decompress (``<unreadable>``), a checksum made with
    a key this process was not given (``<unknown key …>``), or an event the
    index does not hold at its place (``<not indexed>``: stored twice before
    migration 0006). ``upgrade`` re-signs each version-1 event that checks out
    with a version-2 (keyed) checksum.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 (got {chunk})")
    for name, value in (("from_position", from_position), ("to_position", to_position)):
        if value is not None and not 0 <= value <= MAX_POSITION:
            raise ValueError(f"{name} must be from 0 to 2**63-1 (got {value})")
    low = from_position or 0
    high = to_position if to_position is not None else MAX_POSITION
    statement = reads.db.sql("store", "verify_chunk", columns=COLUMNS)
    checked = legacy = upgraded = 0
    mismatches: list[ChecksumMismatch] = []
    with reads.db.connection() as conn:
        cursor_from = low - 1
        while True:
            rows: list[Any] = conn.execute(statement, [cursor_from, high, chunk]).fetchall()
            if not rows:
                break
            for row in rows:
                *columns, indexed = row
                problem = _check(reads, tuple(columns), upgrade)
                if problem is None and not indexed:
                    problem = "<not indexed>"
                if problem is not None:
                    mismatches.append(ChecksumMismatch(columns[0], columns[8], columns[6],
                                                       columns[18], problem))
                elif checksums.version_of(columns[18]) == 1:
                    legacy += 1
                    if upgrade:
                        upgraded += _resign(reads, conn, tuple(columns))
            checked += len(rows)
            if progress:
                progress(len(rows))
            cursor_from = rows[-1][8]
    return VerifyReport(checked, mismatches, legacy - upgraded, upgraded)


def _check(reads: StoreReads, row: tuple[Any, ...], upgrade: bool) -> str | None:
    """None when the event checks out, else what is wrong with it."""
    try:
        reads.decode_row(row, verify=True)
    except IntegrityError as exc:
        if exc.actual == LEGACY and upgrade:
            return None  # checked against its version-1 checksum; re-signed next
        return exc.actual
    except UnknownKeyError as exc:
        return f"<unknown key {exc.kid}>"
    except Exception:  # a corrupt compressed payload is reported, not raised
        return "<unreadable>"
    return None


def _resign(reads: StoreReads, conn: Any, row: tuple[Any, ...]) -> int:
    """Replace a checked version-1 checksum by version 2 (the store's rewrite path)."""
    record = reads.decode_row(row, verify=False)
    data_text, payload, metadata_text, compression = row[10], row[11], row[12], row[16]
    data = codecs.decompress(compression, bytes(payload)) if payload is not None else data_text.encode()
    new = checksums.sign(reads.ring(), record_message(record, data, metadata_text.encode()))
    with conn.transaction():
        conn.execute(reads.db.sql("store", "allow_rewrite"))
        cur = conn.execute(reads.db.sql("store", "resign_event"), {
            "checksum": new, "event_id": record.event_id, "created_at": record.created_at,
            "old": row[18]})
    return int(cur.rowcount)


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


def metrics(reads: StoreReads, month_partitions: MonthPartitions, exact: bool = False) -> StoreMetrics:
    """Counts and sizes of the events, streams and month partitions.

    By default from the catalog's statistics (row estimates of the last
    ANALYZE, sizes of the partitions): a Prometheus scrape costs the same
    whatever the store holds. ``exact`` counts with full scans (and adds the
    payload byte totals), for an operator who asks.
    """
    db = reads.db
    parts = month_partitions.list_all()
    total_bytes = sum(p.total_bytes for p in parts)
    with db.connection() as conn:
        if not exact:
            totals = conn.execute(db.sql("store", "metrics_totals")).fetchone()
            by_type = conn.execute(db.sql("store", "metrics_types_estimate")).fetchall()
            streams = conn.execute(db.sql("store", "metrics_streams")).fetchone()
            assert totals is not None and streams is not None
            return StoreMetrics(
                events=int(totals[0]), streams=int(streams[0]), partitions=len(parts),
                total_bytes=total_bytes, original_payload_bytes=None, stored_payload_bytes=None,
                compressed_events=None, events_by_type={k: int(v) for k, v in by_type},
                exact=False,
            )
        row = conn.execute(db.sql("store", "metrics_exact_totals")).fetchone()
        exact_types = conn.execute(db.sql("store", "metrics_exact_by_type")).fetchall()
        exact_streams = conn.execute(db.sql("store", "metrics_exact_streams")).fetchone()
    assert row is not None and exact_streams is not None
    (events, original_bytes, stored_bytes, compressed) = row
    return StoreMetrics(
        events=int(events), streams=int(exact_streams[0]), partitions=len(parts),
        total_bytes=total_bytes,
        original_payload_bytes=int(original_bytes), stored_payload_bytes=int(stored_bytes),
        compressed_events=int(compressed),
        events_by_type={k: int(v) for k, v in exact_types}, exact=True,
    )
