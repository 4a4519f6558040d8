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

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import ArchiveError
from ..store.partitions import create_month_partition, month_of
from .locate import Located, locate
from .segments import FIELDS, SegmentManifest, read_segment

if TYPE_CHECKING:
    from ..store.persistence import EventStore


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
    folder, _, _name = manifest_path.rpartition("/")
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


_PAYLOAD = FIELDS.index("payload")  # base64 in the file, bytea in the table


def _restore_lines(store: EventStore, lines: list[dict[str, Any]]) -> int:
    months = {month_of(datetime.fromisoformat(line["created_at"])) for line in lines}
    columns = ", ".join(FIELDS)
    with store.db.connection() as conn:
        for month in sorted(months):
            create_month_partition(store.db, conn, month)
        with conn.transaction():
            conn.execute(store.db.sql("archive", "restore_table"))
            copy_sql = store.db.sql("archive", "restore_copy", columns=columns)
            with conn.cursor().copy(copy_sql) as copy:
                for line in lines:
                    row = [line[name] for name in FIELDS]
                    if row[_PAYLOAD] is not None:
                        row[_PAYLOAD] = base64.b64decode(row[_PAYLOAD])
                    copy.write_row(row)
            cur = conn.execute(store.db.sql("archive", "restore_events", columns=columns))
            (inserted,) = cur.fetchone() or (0,)
            conn.execute(store.db.sql("archive", "restore_event_types"))
            conn.execute(store.db.sql("archive", "restore_streams"))
    return int(inserted)


def restore_archive(store: EventStore, url: str) -> RestoreResult:
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
