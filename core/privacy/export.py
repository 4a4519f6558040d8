"""Subject export (GDPR articles 15 and 20): everything the store holds about one person.

One JSON file (written 0600, whole or not at all)::

    {"format": "evstore-subject-export/1", "subject": ..., "exported_at": ..., "exported_by": ...,
     "manifest": {"events": {"count": n, "sha256": ...}, "archived_events": {...},
                  "snapshots": {...}, "access_log": {...}},
     "events": [...], "archived_events": [...], "snapshots": [...], "access_log": [...]}

Each section's ``sha256`` is the SHA-256 of the section as canonical JSON
(:func:`section_digest`: sorted keys, no spaces, UTF-8), so a reader checks
the file with nothing but a JSON parser and a hash. Events are decoded (and
decrypted: core/privacy's field encryption opens in ``decode_row``); the
subject's events are those whose ``metadata.user_id`` or aggregate id is the
subject, or whose declared subject path holds it. Archived events come from
every cataloged archive segment (read through A's read-through cache);
snapshots are those of the aggregates of the subject's events; the access log
is every entry about the subject before this export. The export itself is
one access-log entry (``export``), written after the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

from ..store import hooks
from ..store.reads import COLUMNS
from .access_log import AccessEntry, entries_about, record
from .holds import subject_match

if TYPE_CHECKING:
    from ..store.persistence import EventRecord, EventStore

FORMAT = "evstore-subject-export/1"
SECTIONS = ("events", "archived_events", "snapshots", "access_log")
MAX_POSITION = 2**63 - 1


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def section_digest(items: list[Any]) -> str:
    return hashlib.sha256(canonical(items)).hexdigest()


@dataclass(frozen=True)
class ExportResult:
    path: Path
    counts: dict[str, int]
    seconds: float
    manifest: dict[str, Any]


def event_json(event: EventRecord) -> dict[str, Any]:
    return {
        "event_id": str(event.event_id), "stream_id": event.stream_id,
        "stream_position": event.stream_position, "global_position": event.global_position,
        "aggregate_id": event.aggregate_id, "aggregate_type": event.aggregate_type,
        "event_type": event.event_type, "event_version": event.event_version,
        "aggregate_version": event.aggregate_version,
        "created_at": event.created_at.isoformat(), "status": event.status,
        "data": event.event_data, "metadata": event.metadata.to_dict(),
    }


def _is_subjects(event: EventRecord, subject: str, registry: Any) -> bool:
    return (event.aggregate_id == subject or event.metadata.user_id == subject
            or registry.subject_of(event) == subject)


def live_events(store: EventStore, subject: str) -> list[EventRecord]:
    """The subject's events in PostgreSQL, decoded, in the global order."""
    db = store.db
    match = subject_match(store)
    args = {"subjects": [subject], **match}
    with db.connection() as conn:
        rows = conn.execute(db.sql("privacy_log", "subject_event_rows", columns=COLUMNS),
                            args).fetchall()
        if match["d_types"]:
            seen = {r[0] for r in rows}
            rows += [r for r in conn.execute(
                db.sql("privacy_log", "subject_event_rows_declared", columns=COLUMNS), args)
                if r[0] not in seen]
    with hooks.unobserved():  # the export is logged once, as a whole
        events = [store.decode_row(r) for r in rows]
    return sorted(events, key=lambda e: (e.transaction_id or 0, e.global_position or 0))


def archived_events(store: EventStore, subject: str, live_ids: set[Any]) -> list[EventRecord]:
    """The subject's events in archive segments (every cataloged segment is read)."""
    from ..archive.readthrough import fetch_segment_lines, line_to_row
    from .declarations import registry_for

    registry = registry_for(store.settings)
    db = store.db
    with db.connection() as conn:
        segments = conn.cursor(row_factory=dict_row).execute(db.sql("archive", "catalog_segments"),
                               {"lo": 0, "hi": MAX_POSITION}).fetchall()
    needle = json.dumps(subject)[1:-1]
    data_paths = bool(subject_match(store)["d_types"])
    found: dict[str, EventRecord] = {}
    for seg in segments:
        lines = fetch_segment_lines(store.settings, seg["target_url"], seg["data_path"],
                                    seg["sha256"], seg["raw_bytes"], seg["event_count"])
        for line in lines:
            if line["event_id"] in found or (
                    line["aggregate_id"] != subject and needle not in line["metadata"]
                    and not data_paths):
                continue
            event = store.decode_row(line_to_row(line))
            if event.event_id not in live_ids and _is_subjects(event, subject, registry):
                found[line["event_id"]] = event
    return sorted(found.values(), key=lambda e: (e.transaction_id or 0, e.global_position or 0))


def snapshots_of(store: EventStore, aggregates: set[str]) -> list[dict[str, Any]]:
    from ..snapshots.store import decode_state

    with store.db.connection() as conn:
        rows = conn.execute(store.db.sql("privacy_log", "subject_snapshots"),
                            {"aggregates": sorted(aggregates)}).fetchall()
    out = []
    for sid, aggregate_id, atype, version, schema, data, codec, digest, created in rows:
        try:
            state = decode_state(bytes(data), codec, digest)
        except Exception:  # a damaged snapshot is listed as unreadable, not dropped
            state = None
        out.append({"snapshot_id": str(sid), "aggregate_id": aggregate_id, "aggregate_type": atype,
                    "aggregate_version": int(version), "state_schema": int(schema),
                    "created_at": created.isoformat(), "state": state,
                    "readable": state is not None})
    return out


def log_json(row: dict[str, Any]) -> dict[str, Any]:
    details = row["details"]
    return {
        "access_id": str(row["access_id"]), "seq": row["seq"],
        "accessed_at": row["accessed_at"].isoformat(), "accessor": row["accessor"],
        "access_type": row["access_type"], "purpose": row["purpose"],
        "ip_address": row["ip_address"], "user_agent": row["user_agent"],
        "event_ids": [str(e) for e in row["event_ids"] or ()],
        "subject_ids": list(row["subject_ids"] or ()),
        "details": details if isinstance(details, dict) else json.loads(details or "{}"),
    }


def export_subject(store: EventStore, subject: str, out: Path | str,
                   include_archive: bool = True) -> ExportResult:
    """Write everything about ``subject`` to ``out`` (see the module's docstring)."""
    if not subject:
        raise ValueError("a subject id is needed")
    started = time.perf_counter()
    out = Path(out)
    events = live_events(store, subject)
    live_ids = {e.event_id for e in events}
    archived = archived_events(store, subject, live_ids) if include_archive else []
    aggregates = {e.aggregate_id for e in (*events, *archived)} | {subject}
    # PostgreSQLEventStore's method: the EventStore contract has no flush_access_log.
    store.flush_access_log()  # type: ignore[attr-defined]
    sections: dict[str, list[Any]] = {
        "events": [event_json(e) for e in events],
        "archived_events": [event_json(e) for e in archived],
        "snapshots": snapshots_of(store, aggregates),
        "access_log": [log_json(r) for r in entries_about(store, subject)],
    }
    observer = hooks.observer_of(store)
    ctx = observer.context() if observer is not None else hooks.current_access()  # type: ignore[attr-defined]
    encoded = {name: canonical(items) for name, items in sections.items()}  # each encoded once
    manifest: dict[str, dict[str, Any]] = {
        name: {"count": len(sections[name]), "sha256": hashlib.sha256(text).hexdigest()}
        for name, text in encoded.items()}
    head = {"format": FORMAT, "subject": subject,
            "exported_at": datetime.now(UTC).isoformat(), "exported_by": ctx.accessor,
            "archive_included": include_archive, "manifest": manifest}
    # The canonical JSON of the whole body (keys sorted), built from the encoded sections.
    parts = {**{k: canonical(v) for k, v in head.items()}, **encoded}
    data = b"{" + b",".join(canonical(k) + b":" + parts[k] for k in sorted(parts)) + b"}"
    _write_private(out, data)
    record(store, AccessEntry(
        "export", ctx.accessor or "evstore", purpose=ctx.purpose or "subject export (GDPR art. 15/20)",
        ip_address=ctx.ip_address, user_agent=ctx.user_agent, subject_ids=(subject,),
        event_ids=tuple(e.event_id for e in (*events, *archived)),
        details={"events": len(events), "archived_events": len(archived),
                 "snapshots": len(sections["snapshots"]), "file_sha256": hashlib.sha256(data).hexdigest()}))
    return ExportResult(out, {k: v["count"] for k, v in manifest.items()},
                        time.perf_counter() - started, manifest)


def _write_private(path: Path, data: bytes) -> None:
    """``data`` to ``path`` (0600), whole or not at all."""
    folder = path.absolute().parent
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def check_export(path: Path | str) -> dict[str, Any]:
    """Read an export back and check every section against its manifest (ValueError if not)."""
    body = json.loads(Path(path).read_bytes())
    if body.get("format") != FORMAT:
        raise ValueError(f"{path}: not an evstore subject export")
    for name in SECTIONS:
        want = body["manifest"][name]
        items = body[name]
        if len(items) != want["count"] or section_digest(items) != want["sha256"]:
            raise ValueError(f"{path}: section {name!r} does not match its manifest")
    return body  # type: ignore[no-any-return]
