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

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import codecs
from ..errors import ConfigurationError
from ..serialization import checksum_of, dumps

if TYPE_CHECKING:
    from ..store.postgres import PostgreSQLEventStore

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


def anonymize_line(line: dict[str, Any], anonymizer: Anonymizer) -> dict[str, Any]:
    """An archive line (see segments.row_to_line) with anonymized data and a new checksum."""
    import base64

    payload = base64.b64decode(line["payload"]) if line["payload"] is not None else None
    data = event_body(line["event_data"], payload, line["compression"])
    data, meta = anonymizer(data, json.loads(line["metadata"]))
    data_json, meta_json = dumps(data), dumps(meta)
    out = dict(line)
    out.update(
        event_data=data_json, metadata=meta_json, payload=None, compression="none",
        original_size=len(data_json.encode()), stored_size=len(data_json.encode()),
    )
    out["checksum"] = checksum_of(line, data_json, meta_json)
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
    store: PostgreSQLEventStore, user_id: str, anonymize: bool = True,
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
    events, snapshots = store.table("events"), store.table("event_snapshots")
    where = "(metadata->>'user_id' = %(user)s OR aggregate_id = %(user)s)"
    anonymized = deleted = 0
    with store.connection() as conn, conn.transaction():
        if anonymize:
            rows = conn.execute(
                "SELECT event_id, created_at, stream_id, stream_position, aggregate_id, "
                "aggregate_type, event_type, event_version, event_data::text, payload, "
                f"metadata::text, compression FROM {events} WHERE {where} FOR UPDATE",
                {"user": user_id},
            ).fetchall()
            for (event_id, created_at, stream_id, position, agg_id, agg_type, event_type,
                 event_version, data_text, payload, meta_text, compression) in rows:
                data, meta = fn(event_body(data_text, payload, compression), json.loads(meta_text))
                data_json, meta_json = dumps(data), dumps(meta)
                digest = checksum_of(
                    {"event_id": event_id, "stream_id": stream_id, "stream_position": position,
                     "aggregate_id": agg_id, "aggregate_type": agg_type, "event_type": event_type,
                     "event_version": event_version, "created_at": created_at},
                    data_json, meta_json,
                )
                size = len(data_json.encode())
                conn.execute(
                    f"UPDATE {events} SET event_data = %s::jsonb, payload = NULL, "
                    "metadata = %s::jsonb, compression = 'none', checksum = %s, "
                    "original_size = %s, stored_size = %s, status = 'anonymized' "
                    "WHERE event_id = %s AND created_at = %s",
                    [data_json, meta_json, digest, size, size, event_id, created_at],
                )
            anonymized = len(rows)
        else:
            deleted = conn.execute(f"DELETE FROM {events} WHERE {where}", {"user": user_id}).rowcount
        snaps = conn.execute(
            f"DELETE FROM {snapshots} WHERE aggregate_id = %s", [user_id]
        ).rowcount
        result = GdprCleanupResult(user_id, anonymized, deleted, snaps, 0)
        conn.execute(
            f"INSERT INTO {store.table('event_access_log')} (subject_id, accessor, action, "
            "purpose, details) VALUES (%s, %s, %s, %s, %s::jsonb)",
            [user_id, accessor, "gdpr_anonymize" if anonymize else "gdpr_delete",
             "right to be forgotten", json.dumps(result.as_dict())],
        )
    return result
