"""Consent per subject and purpose: given or withdrawn, and what reads then see.

Each change is a row of ``subject_consents`` (migration 0010); the newest row
of a (subject, purpose) is its state, and a subject never asked is treated as
consenting (withdrawal is what is recorded and enforced). A read declaring a
purpose (``store.access_context(purpose=...)``, ``EVSTORE_ACCESS_PURPOSE``, a
replay's ``purpose``) returns the events of a subject who withdrew consent
for that purpose with their declared personal fields replaced by
``"[redacted]"``; other subjects' events are untouched, and a read declaring
no purpose is not filtered. A process trusts its list of withdrawn subjects
for at most ``EVSTORE_CONSENT_CACHE_SECONDS`` (2 s); its own changes apply at
once.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..store.persistence import EventMetadata
from .declarations import parse_path, transform_at

if TYPE_CHECKING:
    from ..store.persistence import EventRecord, EventStore

REDACTED = "[redacted]"
_lock = threading.Lock()


@dataclass(frozen=True)
class ConsentState:
    purpose: str
    granted: bool
    recorded_by: str
    recorded_at: datetime
    note: str | None


def _cache(store: EventStore) -> dict[str, tuple[float, frozenset[str]]]:
    found: dict[str, tuple[float, frozenset[str]]] | None = store.__dict__.get("_evstore_consents")
    if found is None:
        with _lock:
            found = store.__dict__.setdefault("_evstore_consents", {})
    return found


def _check(subject: str, purpose: str) -> None:
    if not subject or not isinstance(subject, str):
        raise ValueError("a subject id is needed")
    if not purpose or not isinstance(purpose, str):
        raise ValueError("a purpose is needed (e.g. 'marketing', 'analytics')")


def record(store: EventStore, subject: str, purpose: str, granted: bool, by: str,
           note: str | None = None) -> ConsentState:
    """Record consent given (``granted``) or withdrawn for one subject and purpose."""
    _check(subject, purpose)
    with store.db.connection() as conn:
        row = conn.execute(store.db.sql("privacy_log", "record_consent"), {
            "subject": subject, "purpose": purpose, "granted": granted, "by": by, "note": note,
        }).fetchone()
    assert row is not None
    _cache(store).pop(purpose, None)
    return ConsentState(purpose, granted, by, row[1], note)


def give(store: EventStore, subject: str, purpose: str, by: str, note: str | None = None) -> ConsentState:
    return record(store, subject, purpose, True, by, note)


def withdraw(store: EventStore, subject: str, purpose: str, by: str,
             note: str | None = None) -> ConsentState:
    return record(store, subject, purpose, False, by, note)


def states(store: EventStore, subject: str) -> list[ConsentState]:
    """The subject's current consent, one state per purpose ever recorded."""
    with store.db.connection() as conn:
        rows = conn.execute(store.db.sql("privacy_log", "subject_consents"),
                            {"subject": subject}).fetchall()
    return [ConsentState(*row) for row in rows]


def withdrawn(store: EventStore, purpose: str) -> frozenset[str]:
    """The subjects whose consent for ``purpose`` is withdrawn now (cached briefly)."""
    cache = _cache(store)
    now = time.monotonic()
    hit = cache.get(purpose)
    if hit is not None and now - hit[0] < store.settings.consent_cache_seconds:
        return hit[1]
    with store.db.connection() as conn:
        found = frozenset(s for (s,) in conn.execute(
            store.db.sql("privacy_log", "withdrawn_for_purpose"), {"purpose": purpose}))
    cache[purpose] = (now, found)
    return found


def redact_event(event: EventRecord, fields: tuple[str, ...]) -> EventRecord:
    """A copy of ``event`` with every value at the declared field paths redacted."""
    data: Any = copy.deepcopy(event.event_data)
    meta: dict[str, Any] = copy.deepcopy(event.metadata.to_dict())
    for path in fields:
        root, steps = parse_path(path)
        transform_at(data if root == "data" else meta, steps, lambda _v: REDACTED)
    return replace(event, event_data=data, metadata=EventMetadata.from_dict(meta))


def apply(store: EventStore, purpose: str, events: list[EventRecord],
          personal: dict[int, tuple[Any, str]]) -> list[EventRecord]:
    """``events`` with those of withdrawn subjects redacted (the same list when none is).

    ``personal`` maps an index of ``events`` to (its compiled declaration, its subject).
    """
    out = withdrawn(store, purpose)
    if not out:
        return events
    changed: list[EventRecord] | None = None
    for i, (compiled, subject) in personal.items():
        if subject in out:
            if changed is None:
                changed = list(events)
            changed[i] = redact_event(events[i], compiled.pd.fields)
    return events if changed is None else changed
