"""The events the benchmarks write: an identity service's users, as in the demo.

Payloads are deterministic (no randomness between runs), 150-300 bytes of
JSON, with the five event types of the demo. Both our store and every
baseline write exactly the same payloads and metadata.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from evstore.core import EventMetadata, EventRecord

AGGREGATE_TYPE = "User"
TYPES = ("UserCreated", "UserUpdated", "EmailChanged", "UserLoggedIn", "UserDeleted")
PLACEHOLDER_CHECKSUM = "0" * 64  # the raw baselines store no real checksum


def payload(i: int) -> dict[str, Any]:
    """The i-th event's data."""
    kind = TYPES[i % len(TYPES)]
    user = f"user-{i // 7:08d}"
    base: dict[str, Any] = {"user_id": user, "tenant": "acme-corp", "sequence": i}
    if kind == "UserCreated":
        base.update(email=f"{user}@example.com", display_name=f"User {i}", locale="en-GB",
                    roles=["member"], marketing_opt_in=bool(i % 2))
    elif kind == "UserUpdated":
        base.update(changes={"display_name": f"User {i} (renamed)", "timezone": "Europe/Berlin"})
    elif kind == "EmailChanged":
        base.update(old_email=f"{user}@example.com", new_email=f"{user}.new@example.org",
                    verified=False)
    elif kind == "UserLoggedIn":
        base.update(ip=f"10.{i % 256}.{(i // 256) % 256}.{i % 7}", user_agent="Mozilla/5.0",
                    mfa=True, session_ttl=3600, score=0.25 + (i % 10) / 10)
    else:
        base.update(reason="user request", hard_delete=False)
    return base


def metadata(i: int) -> EventMetadata:
    return EventMetadata(user_id="svc-identity", correlation_id=f"req-{i:010d}",
                         source="identity-api", extra={"ip_country": "DE"})


@dataclass(frozen=True)
class Spec:
    """One event in neutral form; turned into an EventRecord or a raw row."""

    index: int
    event_id: uuid.UUID
    event_type: str
    data: dict[str, Any]
    meta: EventMetadata
    meta_dict: dict[str, Any]
    created_at: datetime


def specs(start: int, count: int) -> list[Spec]:
    now = datetime.now(UTC)
    out = []
    for i in range(start, start + count):
        meta = metadata(i)
        out.append(Spec(i, uuid.uuid4(), TYPES[i % len(TYPES)], payload(i), meta,
                         meta.to_dict(), now))
    return out


def record(spec: Spec, aggregate_id: str, version: int) -> EventRecord:
    return EventRecord(
        aggregate_id=aggregate_id, aggregate_type=AGGREGATE_TYPE, event_type=spec.event_type,
        event_data=spec.data, aggregate_version=version, metadata=spec.meta,
        event_id=spec.event_id, created_at=spec.created_at,
    )


def raw_row(spec: Spec, stream_id: str, aggregate_id: str, position: int,
            dumps: Any) -> tuple[Any, ...]:
    """The raw baseline's row (RAW_COLUMNS order); ``dumps`` serialises JSON."""
    data = dumps(spec.data)
    size = len(data.encode())
    return (spec.event_id, aggregate_id, AGGREGATE_TYPE, spec.event_type, 1, position,
            stream_id, position, data, dumps(spec.meta_dict), spec.created_at,
            PLACEHOLDER_CHECKSUM, size, size)
