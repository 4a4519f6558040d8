"""Operating personal data: the audit of declarations, and master-key rotation.

:func:`audit` lists the event types seen in the store with no declaration,
and, from a sample of recent events of every type, the fields whose name or
value looks personal (an e-mail, a phone number, an IP address, a name...) but
that no declaration covers: warnings for a person to judge, never a guess
that silently redacts anything.

:func:`rotate_master_key` rewraps every data key not wrapped by the current
master key (EVENT_STORE_MASTER_KEY, with the old one in
EVENT_STORE_PREVIOUS_MASTER_KEYS); events are not touched.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .crypto import cipher_for
from .declarations import registry_for

if TYPE_CHECKING:
    from ..store.persistence import EventStore

_NAMES = re.compile(
    r"(^|_)(e?mail|phone|mobile|name|first_?name|last_?name|surname|street|address|postcode|"
    r"postal_?code|zip|city|ip|ip_?address|birth|dob|ssn|passport|iban|card|user_?agent|"
    r"login|username)($|_)", re.IGNORECASE)
_VALUES = (
    ("an e-mail address", re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")),
    ("an IP address", re.compile(r"^\d{1,3}(\.\d{1,3}){3}$|^[0-9a-fA-F:]{6,}:[0-9a-fA-F:]+$")),
    ("a phone number", re.compile(r"^\+?[\d\s().-]{8,}$")),
)
SAMPLE = 50


@dataclass
class AuditReport:
    declared: list[str] = field(default_factory=list)
    undeclared_types: list[str] = field(default_factory=list)
    # (event type, field path, why it looks personal)
    warnings: list[tuple[str, str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"declared": self.declared, "undeclared_types": self.undeclared_types,
                "warnings": [{"event_type": t, "field": f, "why": w} for t, f, w in self.warnings]}


def _walk(doc: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(doc, dict):
        for k, v in doc.items():
            _walk(v, f"{path}.{k}", out)
    elif isinstance(doc, list):
        for v in doc:
            _walk(v, f"{path}[]", out)
    else:
        out.setdefault(path, doc)


def _why(path: str, value: Any) -> str | None:
    name = re.split(r"[.\[\]]+", path.rstrip("[]"))[-1]
    if _NAMES.search(name):
        return f"its name {name!r} looks personal"
    if isinstance(value, str) and not value.startswith("evenc:"):
        for what, pattern in _VALUES:
            if pattern.match(value.strip()):
                return f"its values look like {what}"
    return None


def _covered(path: str, declared: set[str]) -> bool:
    return any(path == d or path.startswith(d + ".") or path.startswith(d + "[]") for d in declared)


def audit(store: EventStore, sample: int = SAMPLE) -> AuditReport:
    registry = registry_for(store.settings)
    report = AuditReport(declared=sorted(registry.event_types()))
    with store.db.connection() as conn:
        types = [t for (t,) in conn.execute(store.db.sql("privacy", "event_types_seen"))]
        for event_type in types:
            pd = registry.for_event_type(event_type)
            if pd is None:
                report.undeclared_types.append(event_type)
            declared = set(pd.fields) | {pd.subject} if pd is not None else set()
            seen: dict[str, Any] = {}
            for _type, data, meta in conn.execute(store.db.sql("privacy", "sample_events"),
                                           {"event_type": event_type, "limit": sample}):
                _walk(json.loads(data), "data", seen)
                _walk(json.loads(meta), "metadata", seen)
            for path, value in sorted(seen.items()):
                if path == "metadata.user_id" or _covered(path, declared):
                    continue
                why = _why(path, value)
                if why is not None:
                    report.warnings.append((event_type, path, why))
    return report


def rotate_master_key(store: EventStore, batch: int = 500) -> tuple[int, int]:
    """Rewrap every data key under the current master key; (rewrapped now, keys in all)."""
    keys = cipher_for(store).keys
    db, provider = keys.db, keys.provider
    kid = provider.current_kid
    done = 0
    while True:
        with db.connection() as conn, conn.transaction():
            rows = conn.execute(db.sql("privacy", "keys_to_rewrap"), {"kid": kid, "limit": batch}).fetchall()
            for ref, old_kid, wrapped in rows:
                data_key = provider.unwrap(old_kid, ref, bytes(wrapped))
                new_kid, new_wrapped = provider.wrap(ref, data_key)
                conn.execute(db.sql("privacy", "keys_rewrap"),
                             {"ref": ref, "kid": new_kid, "wrapped": new_wrapped})
        done += len(rows)
        if len(rows) < batch:
            break
    with db.connection() as conn:
        row = conn.execute(db.sql("privacy", "keys_count"), {"kid": kid}).fetchone()
    assert row is not None
    return done, int(row[0])
