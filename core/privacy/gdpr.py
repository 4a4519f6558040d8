"""GDPR hooks of the archiver: anonymizers that run before upload, and forgetting a subject.

An anonymizer takes an event's data and metadata (dicts) and returns the
anonymized pair. Archival policies with ``anonymize_before_archive`` run the
named anonymizer on each event before its segment is written, and the
archived line carries the recomputed checksum, so the archive verifies and
restores as the anonymized event. The GDPR feature registers its own
anonymizers by name with :func:`register_anonymizer`; ``redact`` (the
default) blanks the fields in :data:`PERSONAL_FIELDS` and the metadata's
``user_id``.

:func:`cleanup_gdpr_data` forgets one data subject in PostgreSQL: it
anonymizes (or deletes) the subject's events and deletes the subject's
snapshots, and records what it did in ``event_access_log``. Archives already
shipped are not rewritten here (see docs/archive.md).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

from .. import checksums, codecs
from ..errors import ConfigurationError
from ..keys import KeyRing, keyring
from ..serialization import jsonb_text

if TYPE_CHECKING:
    from ..store.persistence import EventStore

Anonymizer = Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]
REDACTED = "[redacted]"
PERSONAL_FIELDS = frozenset({
    "email", "name", "first_name", "last_name", "full_name", "display_name", "username",
    "phone", "phone_number", "address", "street", "postal_code", "city", "ip", "ip_address",
    "user_agent", "date_of_birth", "birth_date", "ssn", "national_id", "password_hint",
})


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if k.lower() in PERSONAL_FIELDS and v is not None else _redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def redact(data: dict[str, Any], metadata: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    meta = _redact(metadata)
    if meta.get("user_id") is not None:
        meta["user_id"] = REDACTED
    return _redact(data), meta


_anonymizers: dict[str, Anonymizer] = {"redact": redact}
_lock = threading.Lock()


def register_anonymizer(name: str, anonymizer: Anonymizer) -> None:
    with _lock:
        _anonymizers[name] = anonymizer


def get_anonymizer(name: str) -> Anonymizer:
    with _lock:
        found = _anonymizers.get(name)
        known = ", ".join(sorted(_anonymizers))
    if found is None:
        raise ConfigurationError(f"unknown anonymizer {name!r} (known: {known})")
    return found


def event_body(event_data: str | None, payload: bytes | None, compression: str) -> dict[str, Any]:
    if payload is not None:
        return json.loads(codecs.decompress(compression, bytes(payload)))  # type: ignore[no-any-return]
    return json.loads(event_data or "null")  # type: ignore[no-any-return]


def anonymize_line(line: dict[str, Any], anonymizer: Anonymizer, ring: KeyRing) -> dict[str, Any]:
    """An archive line (see segments.row_to_line) with anonymized data, re-signed with ``ring``."""
    payload = base64.b64decode(line["payload"]) if line["payload"] is not None else None
    data = event_body(line["event_data"], payload, line["compression"])
    data, meta = anonymizer(data, json.loads(line["metadata"]))
    data_json, meta_json = jsonb_text(data, "event_data"), jsonb_text(meta, "metadata")
    out = dict(line)
    out.update(
        event_data=data_json, metadata=meta_json, payload=None, compression="none",
        original_size=len(data_json.encode()), stored_size=len(data_json.encode()),
    )
    out["checksum"] = checksums.sign(ring, checksums.message_of(line, data_json.encode(),
                                                                meta_json.encode()))
    return out


@dataclass(frozen=True)
class GdprCleanupResult:
    user_id: str
    events_anonymized: int
    events_deleted: int
    snapshots_deleted: int
    archives_rewritten: int  # always 0 here: shipped archives are not rewritten

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def cleanup_gdpr_data(
    store: EventStore, user_id: str, anonymize: bool = True,
    anonymizer: str = "redact", accessor: str = "evstore",
) -> GdprCleanupResult:
    """Forget a data subject: the events whose metadata user_id or aggregate id is theirs.

    With ``anonymize`` the events stay (streams keep their positions) with
    personal fields redacted and checksums recomputed; without it they are
    deleted. The subject's snapshots are deleted either way.
    """
    if not user_id:
        raise ValueError("user_id must not be empty")
    fn = get_anonymizer(anonymizer)
    db = store.db
    subject = {"user": user_id}
    anonymized = deleted = 0
    ring = keyring(store.settings)
    with db.connection() as conn, conn.transaction():
        # The store's own rewrite path: the append-only trigger lets it through.
        conn.execute(db.sql("store", "allow_rewrite"))
        if anonymize:
            rows = conn.cursor(row_factory=dict_row).execute(
                db.sql("privacy", "subject_events_for_update"), subject
            ).fetchall()
            update = db.sql("privacy", "anonymize_event")  # once, not per event
            for row in rows:
                data, meta = fn(
                    event_body(row["event_data"], row["payload"], row["compression"]),
                    json.loads(row["metadata"]),
                )
                data_json, meta_json = jsonb_text(data, "event_data"), jsonb_text(meta, "metadata")
                size = len(data_json.encode())
                conn.execute(update, {
                    "data": data_json, "metadata": meta_json,
                    "checksum": checksums.sign(ring, checksums.message_of(
                        row, data_json.encode(), meta_json.encode())),
                    "size": size,
                    "event_id": row["event_id"], "created_at": row["created_at"],
                })
            anonymized = len(rows)
        else:
            deleted = conn.execute(db.sql("privacy", "delete_subject_events"), subject).rowcount
        snaps = conn.execute(db.sql("privacy", "delete_subject_snapshots"), subject).rowcount
        result = GdprCleanupResult(user_id, anonymized, deleted, snaps, 0)
        conn.execute(db.sql("privacy", "log_access"), {
            "subject": user_id, "accessor": accessor,
            "action": "gdpr_anonymize" if anonymize else "gdpr_delete",
            "purpose": "right to be forgotten", "details": json.dumps(result.as_dict()),
        })
    return result
