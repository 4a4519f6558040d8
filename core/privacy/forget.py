"""Forgetting a data subject: the steps a forget job runs, each idempotent.

A forget is planned as steps (``plan_steps``), each run in one transaction
(``run_step``; the job engine runs each as a batch, workers/forget_jobs.py):

- ``keys``: the subject's tombstone (keyed refs, never the id), its data keys
  destroyed (crypto-shredding: every sealed value of the subject, in the
  database, in backups and in archives, becomes unreadable), its blind-index
  entries removed;
- ``events`` (one per declaration): the subject's events, found exactly by the
  declared subject path, event type, version range and aggregate type; plain
  values of declared fields (written before encryption was on) are replaced
  by :data:`~.crypto.ANONYMIZED` and the event re-signed (sealed values stay:
  their key is gone and their checksum keeps verifying); the snapshots of
  every aggregate those events belong to are dropped (a snapshot embeds
  decrypted fields), to be rebuilt from the events;
- ``archive`` (one per archive run): see :mod:`.archive_forget`.

Finishing (``finish``) writes the audit: counts, who and when, and the
subject's keyed ref only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

from .. import checksums
from ..keys import keyring
from ..serialization import jsonb_text
from .anonymize import anonymize_fields, as_event, drop_snapshots, event_body
from .crypto import cipher_for, subject_refs
from .declarations import PersonalData, PrivacyRegistry, registry_for

if TYPE_CHECKING:
    import psycopg

    from ..store.persistence import EventStore

MAX_VERSION = 2**31 - 1
COUNTS = ("events_anonymized", "events_crypto_shredded", "snapshots_rewritten",
          "archive_segments_rewritten", "keys_destroyed", "blind_index_entries_removed")


@dataclass(frozen=True)
class ForgetResult:
    """What a forget did (the spec's cleanup_gdpr_data result)."""

    subject_ref: str
    events_anonymized: int = 0
    events_crypto_shredded: int = 0
    snapshots_rewritten: int = 0
    archive_segments_rewritten: int = 0
    keys_destroyed: int = 0
    blind_index_entries_removed: int = 0
    job_id: int | None = None
    request_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    # The names of the earlier result (evstore archive forget, GdprCleanupResult).
    @property
    def events_deleted(self) -> int:
        return 0

    @property
    def snapshots_deleted(self) -> int:
        return self.snapshots_rewritten

    @property
    def archives_rewritten(self) -> int:
        return self.archive_segments_rewritten

    @classmethod
    def of(cls, ref: str, counts: dict[str, Any], **extra: Any) -> ForgetResult:
        return cls(ref, **{k: int(counts.get(k, 0)) for k in COUNTS}, **extra)


def check_subject(subject: Any) -> str:
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 1000:
        raise ValueError("a subject id is a non-empty string (at most 1000 characters)")
    return subject


def _next_version(registry: PrivacyRegistry, pd: PersonalData) -> int:
    later = [d.version for d in registry.declarations()
             if d.event_type == pd.event_type and d.version > pd.version]
    return min(later) if later else MAX_VERSION


def plan_steps(store: EventStore, subject: str) -> list[dict[str, Any]]:
    """The steps of forgetting ``subject``: keys, one per declaration, one per archive run."""
    check_subject(subject)
    registry = registry_for(store.settings)
    steps: list[dict[str, Any]] = [{"step": "keys"}]
    for pd in registry.declarations():
        steps.append({"step": "events", "event_type": pd.event_type, "version": pd.version})
    with store.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(store.db.sql("privacy", "archived_segments")).fetchall()
    runs: dict[str, int] = {}
    for row in rows:
        runs[row["run_id"]] = runs.get(row["run_id"], 0) + 1
    steps.extend({"step": "archive", "run_id": run_id, "segments": n} for run_id, n in runs.items())
    return steps


def run_step(store: EventStore, conn: psycopg.Connection, subject: str,
             step: dict[str, Any]) -> dict[str, int]:
    """Run one step in ``conn``'s transaction; its counts."""
    kind = step.get("step")
    if kind == "keys":
        return _forget_keys(store, conn, subject, step.get("job_id"))
    if kind == "events":
        registry = registry_for(store.settings)
        pd = registry.for_event_type(str(step["event_type"]), int(step["version"]))
        if pd is None or pd.version != int(step["version"]):
            return {}  # the declaration is gone: nothing of it to forget
        return _forget_events(store, conn, subject, pd, _next_version(registry, pd))
    if kind == "archive":
        from .archive_forget import forget_in_run

        return forget_in_run(store, conn, subject, str(step["run_id"]))
    raise ValueError(f"unknown forget step {kind!r}")


def _forget_keys(store: EventStore, conn: psycopg.Connection, subject: str,
                 job_id: int | None) -> dict[str, int]:
    db = store.db
    refs = subject_refs(keyring(store.settings), subject)
    conn.execute(db.sql("privacy", "tombstone_insert"), {"refs": refs, "job_id": job_id})
    removed = conn.execute(db.sql("privacy", "blind_forget"), {"refs": refs}).rowcount
    cipher = cipher_for(store)
    if store.settings.keys_url:
        destroyed = cipher.keys.destroy(refs)
    else:  # in the batch's own transaction
        destroyed = conn.execute(db.sql("privacy", "keys_destroy"), {"refs": refs}).rowcount
        cipher.keys.forget_cached(refs)
    return {"keys_destroyed": destroyed, "blind_index_entries_removed": removed}


def _subject_fragment(pd: PersonalData) -> tuple[str, list[str] | None]:
    root, keys = pd.subject_steps()
    if root == "aggregate_id":
        return "aggregate_id", None
    return ("metadata" if root == "metadata" else "event_data") + " #>> %(path)s", list(keys)


def _forget_events(store: EventStore, conn: psycopg.Connection, subject: str, pd: PersonalData,
                   next_version: int) -> dict[str, int]:
    db = store.db
    fragment, path = _subject_fragment(pd)
    params = {"event_type": pd.event_type, "aggregate_type": pd.aggregate_type,
              "version": pd.version, "next_version": next_version, "subject": subject, "path": path}
    registry = PrivacyRegistry([pd])
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(db.sql("privacy", "subject_events_for_update", subject=fragment),
                           params).fetchall()
        if fragment.startswith("event_data"):
            rows += cur.execute(db.sql("privacy", "packed_events_for_update"), params).fetchall()
    conn.execute(db.sql("store", "allow_rewrite"))
    ring = keyring(store.settings)
    update = db.sql("privacy", "anonymize_event")
    anonymized = shredded = 0
    aggregates: set[tuple[str, str]] = set()
    for row in rows:
        data, meta = event_body(row), json.loads(row["metadata"])
        if registry.subject_of(as_event(row, data, meta)) != subject:
            continue  # (a packed event of another subject)
        aggregates.add((row["aggregate_type"], row["aggregate_id"]))
        plain, sealed = anonymize_fields(pd, data, meta, sealed_too=False)
        shredded += 1 if sealed and not plain else 0
        if not plain:
            continue
        data_json, meta_json = jsonb_text(data, "event_data"), jsonb_text(meta, "metadata")
        conn.execute(update, {
            "data": data_json, "metadata": meta_json, "size": len(data_json.encode()),
            "checksum": checksums.sign(ring, checksums.message_of(
                row, data_json.encode(), meta_json.encode())),
            "event_id": row["event_id"], "created_at": row["created_at"],
        })
        anonymized += 1
    snapshots = drop_snapshots(store, conn, aggregates)
    return {"events_anonymized": anonymized, "events_crypto_shredded": shredded,
            "snapshots_rewritten": snapshots}


# -- the request and its audit -------------------------------------------------


def open_request(store: EventStore, subject: str, requested_by: str, job_id: int | None = None,
                 conn: psycopg.Connection | None = None) -> int:
    ref = subject_refs(keyring(store.settings), subject)[0]
    sql = store.db.sql("privacy", "request_insert")
    params = {"ref": ref, "job_id": job_id, "by": requested_by}
    if conn is not None:
        row = conn.execute(sql, params).fetchone()
    else:
        with store.db.connection() as own:
            row = own.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def add_counts(store: EventStore, conn: psycopg.Connection, request_id: int,
               counts: dict[str, int]) -> None:
    conn.execute(store.db.sql("privacy", "request_add"),
                 {"request_id": request_id, "add": json.dumps(counts)})


def finish(store: EventStore, conn: psycopg.Connection, request_id: int, accessor: str) -> None:
    """Close the request and write its audit row (counts, who, when; the keyed ref only)."""
    row = conn.execute(store.db.sql("privacy", "request_finish"), {"request_id": request_id}).fetchone()
    if row is None:
        return  # finished already (a retried last batch)
    with conn.cursor(row_factory=dict_row) as cur:
        req = cur.execute(store.db.sql("privacy", "request_get"), {"request_id": request_id}).fetchone()
    assert req is not None
    try:
        from .access_log import AccessEntry, record
    except ImportError:  # the access log (issue 11) is not installed: forget_requests is the audit
        return
    record(store, AccessEntry(
        access_type="gdpr_forget", accessor=accessor, purpose="right to be forgotten",
        subject_id=req["subject_ref"],
        details={"request_id": request_id, "job_id": req["job_id"], **dict(req["counts"])},
    ), conn)


def get_result(store: EventStore, request_id: int) -> ForgetResult:
    with store.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        req = cur.execute(store.db.sql("privacy", "request_get"), {"request_id": request_id}).fetchone()
    if req is None:
        raise ValueError(f"no forget request {request_id}")
    return ForgetResult.of(req["subject_ref"], dict(req["counts"]), job_id=req["job_id"],
                           request_id=request_id)
