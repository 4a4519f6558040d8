"""Restore archived segments into the store, and verify archives in place.

Restore is idempotent: rows go through a temporary table into ``events`` with
``ON CONFLICT DO NOTHING`` on the primary key, so restoring twice (or a
segment whose events never left) adds nothing. Every segment is checked
(SHA-256, count, each event's checksum) before a row is written. Events come
back with their original global position and transaction id, so the global
order is the one they were archived from; partitions of their months are
created when missing, and the streams and event types they name are recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import ArchiveError
from ..store.partitions import create_partition, month_of
from .locate import Located, locate
from .segments import FIELDS, SegmentManifest, read_segment

if TYPE_CHECKING:
    from ..store.postgres import PostgreSQLEventStore


@dataclass(frozen=True)
class RestoreResult:
    url: str
    segments: int
    events_in_archive: int
    events_restored: int
    events_already_present: int


@dataclass
class ArchiveVerifyReport:
    url: str
    segments: int = 0
    events: int = 0
    stored_bytes: int = 0
    problems: list[str] = field(default_factory=list)
    has_run_manifest: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and self.segments > 0


def _load(located: Located, manifest_path: str) -> tuple[SegmentManifest, list[dict[str, Any]]]:
    target = located.target
    where = target.url_of(manifest_path)
    manifest = SegmentManifest.from_bytes(target.read(manifest_path), where)
    folder = manifest_path.rpartition("/")[0]
    data_path = f"{folder}/{manifest.data_file}" if folder else manifest.data_file
    data = target.read(data_path)
    return manifest, list(read_segment(data, manifest, target.url_of(data_path)))


def verify_archive(url: str) -> ArchiveVerifyReport:
    """Check every segment an URL names; problems are collected, not raised."""
    located = locate(url)
    report = ArchiveVerifyReport(url, has_run_manifest=located.run is not None)
    report.problems.extend(located.problems)
    for path in located.manifests:
        try:
            manifest, lines = _load(located, path)
        except FileNotFoundError as exc:
            report.problems.append(f"{located.target.url_of(path)}: missing ({exc})")
            continue
        except ArchiveError as exc:
            report.problems.append(str(exc))
            continue
        report.segments += 1
        report.events += len(lines)
        report.stored_bytes += manifest.stored_bytes
    if not located.manifests:
        report.problems.append(f"{url}: no archive segments found")
    return report


_TEMP = (
    "CREATE TEMP TABLE restore_rows (event_id uuid, aggregate_id text, aggregate_type text, "
    "event_type text, event_version integer, aggregate_version bigint, stream_id text, "
    "stream_position bigint, global_position bigint, transaction_id xid8, event_data jsonb, "
    "payload bytea, metadata jsonb, created_at timestamptz, stored_at timestamptz, status text, "
    "compression text, encryption text, checksum text, original_size integer, "
    "stored_size integer) ON COMMIT DROP"
)
_COLUMNS = ", ".join(FIELDS)


def _restore_lines(store: PostgreSQLEventStore, lines: list[dict[str, Any]]) -> int:
    import base64

    months = {month_of(datetime.fromisoformat(line["created_at"])) for line in lines}
    events = store.table("events")
    with store.connection() as conn:
        for month in sorted(months):
            create_partition(conn, store.schema, month)
        with conn.transaction():
            conn.execute(_TEMP)
            with conn.cursor().copy(f"COPY restore_rows ({_COLUMNS}) FROM STDIN") as copy:
                for line in lines:
                    row = [line[name] for name in FIELDS]
                    payload = line["payload"]
                    row[FIELDS.index("payload")] = (
                        None if payload is None else base64.b64decode(payload)
                    )
                    copy.write_row(row)
            inserted = conn.execute(
                f"WITH new AS (INSERT INTO {events} ({_COLUMNS}) SELECT {_COLUMNS} "
                "FROM restore_rows ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM new"
            ).fetchone()
            conn.execute(
                f"INSERT INTO {store.table('event_types')} (event_type) "
                "SELECT DISTINCT event_type FROM restore_rows ON CONFLICT DO NOTHING"
            )
            conn.execute(
                f"INSERT INTO {store.table('streams')} AS s (stream_id, aggregate_id, "
                "aggregate_type, version) SELECT stream_id, min(aggregate_id), "
                "min(aggregate_type), max(stream_position) FROM restore_rows GROUP BY stream_id "
                "ON CONFLICT (stream_id) DO UPDATE SET version = GREATEST(s.version, "
                "EXCLUDED.version)"
            )
    return int(inserted[0]) if inserted else 0


def restore_archive(store: PostgreSQLEventStore, url: str) -> RestoreResult:
    """Bring the segments an URL names back into the store (see module doc)."""
    located = locate(url)
    if located.problems:
        raise ArchiveError(f"{url}: " + "; ".join(located.problems))
    if not located.manifests:
        raise ArchiveError(f"{url}: no archive segments found")
    total = restored = 0
    for path in located.manifests:
        _manifest, lines = _load(located, path)  # checked before any row is written
        total += len(lines)
        restored += _restore_lines(store, lines)
    return RestoreResult(url, len(located.manifests), total, restored, total - restored)
