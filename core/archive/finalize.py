"""Finish a run: re-check every segment, publish the run manifest, then delete.

Events leave PostgreSQL only here, and only when every segment of the run is
verified and still on the target. Whole monthly partitions (TIME_BASED,
SIZE_BASED) are detached and dropped, after checking under a lock that every
row of the partition is one the run archived; other strategies delete the
archived rows segment by segment, each delete in the same transaction as the
segment's status. Safe to call again after any failure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import ArchiveError
from ..privacy.holds import held_subjects, partition_pin, subject_match
from ..serialization import iso
from .catalog import write_catalog
from .export import reset_segment, still_published
from .guard import snapshot_guard
from .readthrough import forget_empty
from .runs import ArchiveRun, get_run, list_segments
from .segments import MANIFEST_SUFFIX, RUN_MANIFEST, RunManifest, segment_name, sha256
from .targets import ArchiveTarget

if TYPE_CHECKING:
    import psycopg

    from ..store.persistence import EventStore

log = logging.getLogger(__name__)


def _publish_manifest(target: ArchiveTarget, run: ArchiveRun) -> str:
    segments = []
    for number in range(1, run.segment_count + 1):
        manifest = target.read(run.manifest_path(number))
        segments.append({
            "number": number,
            "manifest": segment_name(number) + MANIFEST_SUFFIX,
            "manifest_sha256": sha256(manifest),
        })
    body = RunManifest(
        run_id=run.run_id, policy=run.policy, strategy=run.strategy,
        event_count=run.event_count, segments=segments, partitions=run.partitions,
        policy_spec=run.policy_spec, created_at=iso(run.created_at),
    )
    path = f"{run.folder}/{RUN_MANIFEST}"
    target.write_verified(path, body.to_bytes())
    return target.url_of(path)


def _remove_leftovers(target: ArchiveTarget, run: ArchiveRun) -> None:
    """Temporary objects of uploads that died half-way (a killed worker); best effort."""
    try:
        leftovers = [p for p in target.fs.find(target.path(run.folder)) if ".tmp-" in str(p)]
        for path in leftovers:
            target.fs.rm_file(path)
    except Exception:  # cosmetic: never fail a verified run over garbage
        pass


def _drop_partition(conn: psycopg.Connection, store: EventStore, run: ArchiveRun,
                    name: str) -> str | None:
    """Detach and drop one partition if every row in it was archived.

    Returns None when dropped (or already gone), else why it was kept.
    """
    db = store.db
    partition = db.table(name)
    with conn.transaction():
        exists = conn.execute(
            db.sql("archive", "partition_exists"), {"schema": db.schema, "name": name}
        ).fetchone()
        if not exists:
            return None  # dropped by an earlier attempt of this run
        conn.execute(db.sql("archive", "drop_lock_timeout"))
        conn.execute(db.sql("archive", "lock_partition", partition=partition))
        params = {"run_id": run.run_id}
        (uncovered,) = conn.execute(
            db.sql("archive", "uncovered_rows", partition=partition), params
        ).fetchone() or (0,)
        if uncovered:
            return (
                f"partition {name} kept: {uncovered} of its events arrived after the run was "
                "planned; the next run of the policy archives it again"
            )
        pinned = partition_pin(conn, store, partition, name)  # a legal hold (issue 11)
        if pinned:
            return pinned
        (total,) = conn.execute(
            db.sql("archive", "partition_rows", partition=partition)
        ).fetchone() or (0,)
        conn.execute(db.sql("store", "allow_rewrite"))  # the store's own rewrite path
        conn.execute(db.sql("archive", "unindex_partition", partition=partition))
        conn.execute(db.sql("archive", "detach_partition", partition=partition))
        conn.execute(db.sql("archive", "drop_partition", partition=partition))
        conn.execute(db.sql("archive", "run_add_deleted"),
                     {"run_id": run.run_id, "deleted": int(total)})
    return None


def finalize_run(
    store: EventStore, run_id: str, target: ArchiveTarget | None = None,
    snapshot_classes: Iterable[type[Any]] | None = None,
) -> ArchiveRun:
    """Complete a run whose segments are all verified; raise ArchiveError otherwise."""
    run = get_run(store, run_id)
    if run.status == "completed":
        return run
    segments = list_segments(store, run_id)
    pending = [s.number for s in segments if s.status == "pending"]
    if pending:
        shown = ", ".join(map(str, pending[:10])) + (" …" if len(pending) > 10 else "")
        raise ArchiveError(
            f"archive run {run_id}: {len(pending)} segment(s) not verified yet ({shown}); "
            "nothing was deleted: run them again (evstore archive run --resume)"
        )
    target = target or ArchiveTarget(run.target_url)
    missing = [s.number for s in segments
               if s.status == "verified" and not still_published(target, run, s)]
    for number in missing:
        reset_segment(store, run_id, number, "published files missing or changed before deletion")
    if missing:
        raise ArchiveError(
            f"archive run {run_id}: segment(s) {', '.join(map(str, missing))} are no longer on "
            f"{run.target_url}; nothing was deleted: run them again"
        )
    with store.db.connection() as conn, conn.transaction():
        conn.execute(store.db.sql("archive", "run_status"),
                     {"run_id": run_id, "status": "exported", "error": None})
        if run.archival_policy.delete_after_archive:
            # Before any event leaves: the catalog names every archived position.
            write_catalog(conn, store, run_id)
    forget_empty()
    if run.archival_policy.delete_after_archive:
        # Before any event leaves. An archive job's guard batches built these
        # already: this final check builds what they could not know of (an
        # aggregate whose first live event came after planning), or all of
        # them for a run finalized in-process.
        guard = snapshot_guard(store, run_id, snapshot_classes)
        log.info("archive run %s: snapshot guard (final check): %d affected, %d built, "
                 "%d already", run_id, guard.affected, guard.built, guard.already)
    manifest_url = _publish_manifest(target, run)
    _remove_leftovers(target, run)
    policy = run.archival_policy
    dropped: list[str] = []
    kept: list[str] = []
    if policy.delete_after_archive:
        with store.db.connection() as conn:
            if policy.drops_partitions:
                for name in run.partitions:
                    why = _drop_partition(conn, store, run, name)
                    if why is None:
                        dropped.append(name)
                    else:
                        kept.append(why)
                for seg in segments if not kept else []:
                    conn.execute(store.db.sql("archive", "segment_deleted"),
                                 {"run_id": run_id, "segment_no": seg.number})
            else:
                held = held_subjects(store)  # their events stay (a legal hold, issue 11)
                delete, match = ("delete_segment_events", {}) if not held else (
                    "delete_segment_events_unheld", {"subjects": held, **subject_match(store)})
                kept_held = 0
                for seg in segments:
                    if seg.status != "verified":
                        continue
                    with conn.transaction():
                        conn.execute(store.db.sql("store", "allow_rewrite"))  # the store's rewrite path
                        (n,) = conn.execute(
                            store.db.sql("archive", delete),
                            {"run_id": run_id, "segment_no": seg.number, **match},
                        ).fetchone() or (0,)
                        kept_held += seg.event_count - int(n)
                        conn.execute(store.db.sql("archive", "segment_deleted"),
                                     {"run_id": run_id, "segment_no": seg.number})
                        conn.execute(store.db.sql("archive", "run_add_deleted"),
                                     {"run_id": run_id, "deleted": int(n)})
                if held and kept_held:
                    kept.append(f"{kept_held} archived event(s) kept in PostgreSQL: they belong "
                                "to subject(s) under legal hold (the policy's next run after "
                                "the release deletes them)")
    with store.db.connection() as conn, conn.transaction():
        conn.execute(store.db.sql("archive", "run_completed"), {
            "run_id": run_id, "dropped": dropped, "manifest_url": manifest_url,
            "error": "; ".join(kept) or None,
        })
        conn.execute(store.db.sql("archive", "drop_items"), {"run_id": run_id})
    return get_run(store, run_id)
