"""GDPR hooks of the archiver: anonymizers that run before upload, and forgetting a subject.

An anonymizer takes an event's data and metadata (dicts) and returns the
anonymized pair. Archival policies with ``anonymize_before_archive`` run the
named anonymizer on each event before its segment is written, and the
archived line carries the recomputed checksum, so the archive verifies and
restores as the anonymized event. The GDPR feature registers its own
anonymizers by name with :func:`register_anonymizer`; ``redact`` (the
default) blanks the fields in :data:`PERSONAL_FIELDS` and the metadata's
``user_id``.

:func:`cleanup_gdpr_data` forgets one data subject everywhere (core/privacy/forget.py,
run as a forget job: core/privacy/forget_job.py).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import checksums, codecs
from ..errors import ConfigurationError
from ..keys import KeyRing
from ..serialization import jsonb_text
from . import crypto  # noqa: F401  (installs the store's field cipher)
from .forget import ForgetResult, check_subject
from .forget_job import run_here

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


# The spec's name for what cleanup_gdpr_data returns.
GdprCleanupResult = ForgetResult


def cleanup_gdpr_data(
    store: EventStore, user_id: str, anonymize: bool = True,
    anonymizer: str = "redact", accessor: str = "evstore",
) -> ForgetResult:
    """Forget a data subject everywhere, as a forget job run in this process (see forget_job).

    The subject is matched exactly by the personal-data declarations
    (core/privacy/declarations.py): its data keys are destroyed, plain-text
    declared fields anonymized (events stay: streams keep their versions and
    load), its aggregates' snapshots dropped, every archive segment holding it
    rewritten, its blind-index entries removed, and a tombstone makes later
    restores come back anonymized. ``anonymize=False`` (delete) is refused:
    deleting events would leave streams with holes. ``anonymizer`` is kept for
    compatibility and not used (declarations say what is personal).
    """
    del anonymizer
    if not anonymize:
        raise ValueError("forgetting deletes no events (a stream would keep its version with no "
                         "events): its personal data is destroyed instead; use anonymize=True")
    return run_here(store, check_subject(user_id), accessor)
