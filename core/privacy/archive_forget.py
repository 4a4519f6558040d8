"""Forgetting in archives: rewrite a run's segments, and anonymize what comes back.

:func:`forget_in_run` rewrites, on the run's target, every segment of the run
that holds the subject: each of its lines (found by the declared subject path,
exactly) gets its declared fields replaced by the anonymized placeholder,
sealed values included, and a new checksum; the segment is rebuilt, written
under its own name with the target's verify-before-replace
(``ArchiveTarget.write_verified``: written aside, read back, checked, then
published), then its manifest (signed), then the run manifest with the new
manifest hashes, then the segment row in PostgreSQL. A step killed half-way
is run again from the start: a segment whose data was replaced but whose
manifest was not is recognised by its lines' own keyed checksums.

:func:`anonymize_forgotten_lines` is the restore hook (core/archive/restore.py):
lines of a subject in the tombstone come back anonymized, whatever the age of
the archive.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zstandard
from psycopg.rows import dict_row

from .. import checksums
from ..archive.rows import parse_segment
from ..archive.segments import (
    FIELDS,
    RUN_MANIFEST,
    RunManifest,
    SegmentManifest,
    _parse_lines,
    build_segment,
    check_checksums,
    decompress_capped,
    sha256,
)
from ..archive.targets import ArchiveTarget
from ..keys import KeyRing, keyring
from ..serialization import jsonb_text
from .anonymize import anonymize_fields, as_event, drop_snapshots, event_body
from .crypto import subject_refs
from .declarations import PrivacyRegistry, registry_for

if TYPE_CHECKING:
    import psycopg

    from ..store.persistence import EventStore

_MAX_RAW = 4 * 1024 * 1024 * 1024  # a segment whose manifest is stale is read no further


def _line_body(line: dict[str, Any]) -> Any:
    return event_body({**line, "payload": None if line["payload"] is None else
                       base64.b64decode(line["payload"])})


def _anonymized_line(line: dict[str, Any], registry: PrivacyRegistry, subjects: set[str],
                     ring: KeyRing) -> dict[str, Any] | None:
    """The line with its subject's declared fields anonymized and re-signed; None if not the subject's."""
    data, meta = _line_body(line), json.loads(line["metadata"])
    event = as_event(line, data, meta)
    subject = registry.subject_of(event)
    if subject is None or subject not in subjects:
        return None
    pd = registry.declaration_of(event)
    assert pd is not None
    plain, sealed = anonymize_fields(pd, data, meta, sealed_too=True)
    if not plain and not sealed:
        return None
    data_json, meta_json = jsonb_text(data, "event_data"), jsonb_text(meta, "metadata")
    out = dict(line)
    out.update(event_data=data_json, metadata=meta_json, payload=None, compression="none",
               original_size=len(data_json.encode()), stored_size=len(data_json.encode()),
               status="anonymized")
    out["checksum"] = checksums.sign(ring, checksums.message_of(line, data_json.encode(),
                                                                meta_json.encode()))
    return out


def _segment_lines(target: ArchiveTarget, manifest: SegmentManifest, data_path: str,
                   ring: KeyRing) -> tuple[list[dict[str, Any]], bool]:
    """The lines of a segment, and whether its data no longer matches its manifest (a
    rewrite interrupted between the two: accepted when every line's keyed checksum holds)."""
    where = target.url_of(data_path)
    data = target.read(data_path)
    stale = sha256(data) != manifest.sha256
    if not stale:
        lines = _parse_lines(decompress_capped(data, manifest.raw_bytes, where), manifest, where)
    else:
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)[:_MAX_RAW]
        lines = parse_segment(raw, FIELDS, where)
    check_checksums(lines, lambda line, computed: (
        f"{where}: event {line['event_id']} fails its checksum; not rewritten"), ring)
    return lines, stale


def forget_in_run(store: EventStore, conn: psycopg.Connection, subject: str,
                  run_id: str) -> dict[str, int]:
    db = store.db
    conn.execute(db.sql("privacy", "lock_run"), {"key": f"evstore-forget-run:{db.schema}:{run_id}"})
    with conn.cursor(row_factory=dict_row) as cur:
        rows = [r for r in cur.execute(db.sql("privacy", "archived_segments")).fetchall()
                if r["run_id"] == run_id]
    if not rows:
        return {}
    ring = keyring(store.settings)
    registry = registry_for(store.settings)
    target = ArchiveTarget(rows[0]["target_url"])
    rewritten = 0
    aggregates: set[tuple[str, str]] = set()
    for row in rows:
        mpath = row["manifest_path"]
        manifest = SegmentManifest.from_bytes(target.read(mpath), target.url_of(mpath))
        folder = mpath.rpartition("/")[0]
        dpath = f"{folder}/{manifest.data_file}" if folder else manifest.data_file
        lines, stale = _segment_lines(target, manifest, dpath, ring)
        changed = False
        for i, line in enumerate(lines):
            new = _anonymized_line(line, registry, {subject}, ring)
            if new is not None:
                lines[i] = new
                changed = True
                aggregates.add((line["aggregate_type"], line["aggregate_id"]))
        if not changed and not stale:
            continue
        data, new_manifest = build_segment(manifest.run_id, manifest.policy, manifest.number,
                                           lines, manifest.anonymized, manifest.format)
        target.write_verified(dpath, data)
        target.write_verified(mpath, new_manifest.to_bytes())
        conn.execute(db.sql("privacy", "segment_rewritten"), {
            "run_id": run_id, "number": manifest.number, "sha256": new_manifest.sha256,
            "raw_bytes": new_manifest.raw_bytes, "stored_bytes": new_manifest.stored_bytes})
        _drop_cached(store, row["sha256"])
        rewritten += 1
    _republish_run(target, rows)
    return {"archive_segments_rewritten": rewritten,
            "snapshots_rewritten": drop_snapshots(store, conn, aggregates)}


def _republish_run(target: ArchiveTarget, rows: list[dict[str, Any]]) -> None:
    """The run manifest again, with the hashes of the segment manifests as they are now."""
    folder = rows[0]["manifest_path"].rpartition("/")[0]
    path = f"{folder}/{RUN_MANIFEST}" if folder else RUN_MANIFEST
    if not target.exists(path):
        return  # the run is not finished: finalize publishes it from the segments
    run = RunManifest.from_bytes(target.read(path), target.url_of(path))
    changed = False
    for seg in run.segments:
        mpath = f"{folder}/{seg['manifest']}" if folder else seg["manifest"]
        digest = sha256(target.read(mpath))
        if seg["manifest_sha256"] != digest:
            seg["manifest_sha256"] = digest
            changed = True
    if changed:
        target.write_verified(path, run.to_bytes())


def _drop_cached(store: EventStore, digest: str | None) -> None:
    """This machine's read-through copy of the old segment (core/archive/readthrough.py)."""
    if not digest:
        return
    settings = store.settings
    folder = getattr(settings, "archive_cache_dir", None) or (Path(settings.home) / "archive-cache")
    (Path(folder) / f"{digest}.zst").unlink(missing_ok=True)


def anonymize_forgotten_lines(store: EventStore, conn: psycopg.Connection,
                              lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines, those of forgotten subjects (the tombstone) anonymized and re-signed."""
    registry = registry_for(store.settings)
    if not registry.event_types():
        return lines
    ring = keyring(store.settings)
    subjects: dict[str, list[str]] = {}
    for line in lines:
        if line["event_type"] in registry.event_types():
            subject = registry.subject_of(as_event(line, _line_body(line), json.loads(line["metadata"])))
            if subject is not None and subject not in subjects:
                subjects[subject] = subject_refs(ring, subject)
    if not subjects:
        return lines
    all_refs = sorted({r for refs in subjects.values() for r in refs})
    found = {r for (r,) in conn.execute(store.db.sql("privacy", "tombstones_among"), {"refs": all_refs})}
    forgotten = {s for s, refs in subjects.items() if found.intersection(refs)}
    if not forgotten:
        return lines
    out = []
    for line in lines:
        if line["event_type"] not in registry.event_types():
            out.append(line)
            continue
        new = _anonymized_line(line, registry, forgotten, ring)
        out.append(new if new is not None else line)
    return out

