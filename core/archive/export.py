"""Export one segment of a run: select, check, (anonymize,) compress, upload, verify.

This is the unit of work a worker runs (the ``archive`` job kind calls it for
each batch) and is safe to run any number of times: a segment already
verified is only re-checked on the target (its data file's size and its
manifest), and a segment is marked verified in PostgreSQL only after both
files were read back and matched their SHA-256.

A failure is recorded (``archive_segments.last_error``) and raised with the
run, the segment and the exception's type; the text of an exception that is
not evstore's own (an anonymizer's ``ValueError``, say) is dropped, since it
may quote event values, which no forget would reach there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

from ..errors import ArchiveError, EventStoreError
from ..keys import keyring
from ..privacy.gdpr import anonymize_line, get_anonymizer
from .fastexport import collect_segment
from .runs import ArchiveRun, ArchiveSegment, get_run, list_segments
from .segments import SegmentManifest, build_segment, check_checksums, row_to_line, sha256
from .targets import ArchiveTarget

if TYPE_CHECKING:
    from ..store.persistence import EventStore


@dataclass(frozen=True)
class SegmentResult:
    run_id: str
    number: int
    events: int
    raw_bytes: int
    stored_bytes: int
    skipped: bool  # already verified on the target: nothing was uploaded
    data_url: str


def _segment(store: EventStore, run: ArchiveRun, number: int) -> ArchiveSegment:
    for seg in list_segments(store, run.run_id):
        if seg.number == number:
            return seg
    raise ArchiveError(f"archive run {run.run_id} has no segment {number}")


def still_published(target: ArchiveTarget, run: ArchiveRun, seg: ArchiveSegment) -> bool:
    """The segment's files are on the target, the data file with the size and the
    SHA-256 recorded when it was verified (read back once more before deletion)."""
    # the paths it was verified at (a segment of format 1 keeps its .jsonl.zst name)
    data = seg.data_path or run.data_path(seg.number)
    manifest = seg.manifest_path or run.manifest_path(seg.number)
    if target.size(data) != seg.stored_bytes or not target.exists(manifest):
        return False
    if seg.sha256 is None:
        return False
    try:
        return sha256(target.read(data)) == seg.sha256
    except FileNotFoundError:
        return False


def reset_segment(store: EventStore, run_id: str, number: int, why: str) -> None:
    """A verified segment back to pending: its files are uploaded and checked again."""
    with store.db.connection() as conn:
        conn.execute(
            store.db.sql("archive", "segment_reset"),
            {"run_id": run_id, "segment_no": number, "error": why},
        )


def export_segment(
    store: EventStore,
    run_id: str,
    number: int,
    target: ArchiveTarget | None = None,
) -> SegmentResult:
    """Write segment ``number`` of run ``run_id`` to its target and verify it."""
    run = get_run(store, run_id)
    seg = _segment(store, run, number)
    target = target or ArchiveTarget(run.target_url)
    data_url = target.url_of(run.data_path(number))
    done = SegmentResult(run_id, number, seg.event_count, seg.raw_bytes or 0,
                         seg.stored_bytes or 0, True, data_url)
    if seg.status == "deleted" or run.status == "completed":
        return done
    if seg.status == "verified":
        if still_published(target, run, seg):
            return done
        reset_segment(store, run_id, number, "published files missing or changed on re-check")
    try:
        return _export(store, run, seg, target, data_url)
    except Exception as exc:
        message = describe_failure(exc, f"archive run {run_id} segment {number}")
        with store.db.connection() as conn:
            conn.execute(
                store.db.sql("archive", "segment_failed"),
                {"run_id": run_id, "segment_no": number, "error": message},
            )
        if isinstance(exc, EventStoreError | OSError):
            raise
        # Not chained: a logged traceback would print the original text.
        raise ArchiveError(message) from None


def describe_failure(exc: BaseException, context: str) -> str:
    """``context: Type: message`` for evstore's own errors (written with ids, never
    event values) and the target's OSErrors (a path, a refused connection);
    ``context: Type`` alone for any other exception."""
    if isinstance(exc, EventStoreError | OSError):
        return f"{context}: {type(exc).__name__}: {exc}"
    return f"{context}: {type(exc).__name__} (its message is not kept: it may quote event data)"


def _export(
    store: EventStore, run: ArchiveRun, seg: ArchiveSegment, target: ArchiveTarget,
    data_url: str,
) -> SegmentResult:
    policy = run.archival_policy
    if not policy.anonymize_before_archive:  # the fast path (fastexport.py)
        collected = collect_segment(store, run, seg, keyring(store.settings))
        if collected.manifest.event_count != seg.event_count:
            raise ArchiveError(
                f"archive run {run.run_id} segment {seg.number}: {collected.manifest.event_count} "
                f"of its {seg.event_count} events are still in the store (deleted by something "
                "else since planning); nothing was uploaded")
        return _publish(store, run, seg, target, data_url, collected.data, collected.manifest,
                        collected.catalog if policy.delete_after_archive else [])
    with store.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            store.db.sql("archive", "segment_rows"),
            {"run_id": run.run_id, "segment_no": seg.number},
        ).fetchall()
    if len(rows) != seg.event_count:
        raise ArchiveError(
            f"archive run {run.run_id} segment {seg.number}: {len(rows)} of its "
            f"{seg.event_count} events are still in the store (deleted by something else "
            "since planning); nothing was uploaded"
        )
    lines = [row_to_line(r) for r in rows]
    ring = keyring(store.settings)
    check_checksums(lines, lambda line, _computed: (
        f"event {line['event_id']} (global position {line['global_position']}) fails "
        f"its checksum in PostgreSQL; it is not archived (run 'evstore verify')"
    ), ring)
    if policy.anonymize_before_archive:
        anonymizer = get_anonymizer(policy.anonymizer)
        lines = [anonymize_line(line, anonymizer, ring) for line in lines]
    data, manifest = build_segment(
        run.run_id, run.policy, seg.number, lines, bool(policy.anonymize_before_archive)
    )
    return _publish(store, run, seg, target, data_url, data, manifest, [])


_CATALOG_ARRAYS = ("stream_id", "first_position", "last_position", "event_count",
                   "min_global_position", "max_global_position", "min_created_at",
                   "max_created_at", "bytes")


def _publish(
    store: EventStore, run: ArchiveRun, seg: ArchiveSegment, target: ArchiveTarget,
    data_url: str, data: bytes, manifest: SegmentManifest, catalog: list[dict[str, Any]],
) -> SegmentResult:
    """Upload and read back the data and the manifest; mark the segment verified and
    catalog its streams (in one transaction)."""
    target.write_verified(run.data_path(seg.number), data)
    target.write_verified(run.manifest_path(seg.number), manifest.to_bytes())
    with store.db.connection() as conn, conn.transaction():
        if catalog:
            columns = {name: [row[name] for row in catalog] for name in _CATALOG_ARRAYS}
            conn.execute(store.db.sql("archive", "catalog_insert_segment"),
                         {"run_id": run.run_id, "segment_no": seg.number, **columns})
        conn.execute(store.db.sql("archive", "segment_verified"), {
            "run_id": run.run_id, "segment_no": seg.number,
            "data_path": run.data_path(seg.number), "manifest_path": run.manifest_path(seg.number),
            "sha256": manifest.sha256, "raw_bytes": manifest.raw_bytes,
            "stored_bytes": manifest.stored_bytes, "first_position": manifest.first_position,
            "last_position": manifest.last_position,
        })
    return SegmentResult(run.run_id, seg.number, manifest.event_count, manifest.raw_bytes,
                         manifest.stored_bytes, False, data_url)
