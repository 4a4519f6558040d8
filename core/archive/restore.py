"""Restore archived segments into the store, and verify archives in place.

Restore is idempotent: rows go through a temporary table into ``events`` with
``ON CONFLICT DO NOTHING`` on the primary key, so restoring twice (or a
segment whose events never left) adds nothing. Every manifest's signature is
checked before anything it names is read, and every segment (SHA-256, size,
count, each event's checksum) before a row is written. An archived event that
would take a stream position or global position the store holds with another
event, or whose id the store holds at another place, fails the whole restore
(one transaction: nothing is written). Events come back with their original
global position and transaction id, so the global order is the one they were
archived from; partitions of their months are created when missing, and the
streams and event types they name are recorded.
"""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row

from ..errors import ArchiveError, ArchiveIntegrityError
from ..privacy.archive_forget import anonymize_forgotten_lines
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


def _load(located: Located, manifest_path: str, trust_unsigned: bool
          ) -> tuple[SegmentManifest, list[dict[str, Any]]]:
    target = located.target
    where = target.url_of(manifest_path)
    manifest = SegmentManifest.from_bytes(target.read(manifest_path), where, trust_unsigned)
    folder, _, _name = manifest_path.rpartition("/")
    data_path = f"{folder}/{manifest.data_file}" if folder else manifest.data_file
    data = target.read(data_path)
    return manifest, list(read_segment(data, manifest, target.url_of(data_path)))


def verify_archive(url: str, trust_unsigned: bool = False) -> ArchiveVerifyReport:
    """Check every segment an URL names; problems are collected, not raised
    (a run manifest that is refused raises ArchiveIntegrityError)."""
    located = locate(url, trust_unsigned)
    report = ArchiveVerifyReport(url, has_run_manifest=located.run is not None)
    report.problems.extend(located.problems)
    for path in located.manifests:
        try:
            manifest, lines = _load(located, path, trust_unsigned)
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


def _copy_lines(store: EventStore, conn: psycopg.Connection, lines: list[dict[str, Any]]) -> None:
    """Partitions for the lines' months, then the lines into ``restore_rows``."""
    for month in sorted({month_of(datetime.fromisoformat(line["created_at"])) for line in lines}):
        create_month_partition(store.db, conn, month)
    copy_sql = store.db.sql("archive", "restore_copy", columns=", ".join(FIELDS))
    with conn.cursor().copy(copy_sql) as copy:
        for line in lines:
            row = [line[name] for name in FIELDS]
            if row[_PAYLOAD] is not None:
                row[_PAYLOAD] = base64.b64decode(row[_PAYLOAD])
            copy.write_row(row)


def _refuse_conflicts(store: EventStore, conn: psycopg.Connection, url: str) -> None:
    with conn.cursor(row_factory=dict_row) as cur:
        found = cur.execute(store.db.sql("archive", "restore_conflicts")).fetchone()
    if found is not None:
        raise ArchiveIntegrityError(
            f"{url}: archived event {found['archived_id']} at stream {found['stream_id']!r} "
            f"position {found['stream_position']} (global position "
            f"{found['global_position']}) conflicts with event {found['other_id']} at stream "
            f"{found['other_stream']!r} position {found['other_position']} (global position "
            f"{found['other_global']}) {found['place']}; nothing was restored"
        )


def _insert(store: EventStore, conn: psycopg.Connection, url: str) -> int:
    """Check the gathered rows against the store and insert them, in one transaction."""
    with conn.transaction():
        conn.execute(store.db.sql("archive", "restore_analyze"))
        _refuse_conflicts(store, conn, url)
        cur = conn.execute(store.db.sql("archive", "restore_events", columns=", ".join(FIELDS)))
        (inserted,) = cur.fetchone() or (0,)
        conn.execute(store.db.sql("archive", "restore_event_types"))
        conn.execute(store.db.sql("archive", "restore_streams"))
    return int(inserted)


def restore_archive(store: EventStore, url: str, trust_unsigned: bool = False) -> RestoreResult:
    """Bring the segments an URL names back into the store (see module doc)."""
    located = locate(url, trust_unsigned)
    if located.problems:
        raise ArchiveError(f"{url}: " + "; ".join(located.problems))
    if not located.manifests:
        raise ArchiveError(f"{url}: no archive segments found")
    total = 0
    # The rows of every segment gather in a session temporary table (each
    # segment checked before it is copied), then one transaction checks them
    # against the store and inserts them: a conflict anywhere writes nothing.
    with store.db.connection() as conn:
        conn.execute(store.db.sql("archive", "restore_drop"))
        conn.execute(store.db.sql("archive", "restore_table"))
        try:
            for path in located.manifests:
                _manifest, lines = _load(located, path, trust_unsigned)
                # Subjects forgotten since the archive was made come back anonymized.
                lines = anonymize_forgotten_lines(store, conn, lines)
                total += len(lines)
                _copy_lines(store, conn, lines)
            restored = _insert(store, conn, url)
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.execute(store.db.sql("archive", "restore_drop"))
    return RestoreResult(url, len(located.manifests), total, restored, total - restored)
