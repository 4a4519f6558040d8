"""``schedule_firings``: one row per (policy, scheduled time), claimed by one scheduler replica.

APScheduler 3 does not coordinate instances, so every replica fires every
period. Each firing first INSERTs its row with ``ON CONFLICT DO NOTHING``;
only the replica whose insert created the row goes on to enqueue the job, and
records the job it started (or why it could not) on the same row.
The statements are in ``core/sql/firings.sql``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import class_row

from ..store.persistence import EventStore


@dataclass(frozen=True)
class Firing:
    policy: str
    scheduled_for: datetime
    fired_at: datetime
    replica: str
    job_kind: str | None
    job_id: str | None
    status: str  # claimed, enqueued, failed
    detail: str | None


def claim_firing(store: EventStore, policy: str, scheduled_for: datetime, replica: str) -> bool:
    """True when this replica won the firing of ``policy`` at ``scheduled_for``."""
    db = store.db
    with db.connection() as conn:
        row = conn.execute(db.sql("firings", "claim_firing"), {
            "policy": policy, "scheduled_for": scheduled_for, "replica": replica,
        }).fetchone()
    return row is not None


def record_firing(
    store: EventStore, policy: str, scheduled_for: datetime, *, status: str,
    job_kind: str | None = None, job_id: str | None = None, detail: str | None = None,
) -> None:
    db = store.db
    with db.connection() as conn:
        conn.execute(db.sql("firings", "record_firing"), {
            "status": status, "job_kind": job_kind, "job_id": job_id, "detail": detail,
            "policy": policy, "scheduled_for": scheduled_for,
        })


def last_firings(store: EventStore) -> dict[str, Firing]:
    """The most recent firing of each policy."""
    db = store.db
    with db.connection() as conn:
        rows = conn.cursor(row_factory=class_row(Firing)).execute(
            db.sql("firings", "last_firings")).fetchall()
    return {f.policy: f for f in rows}


def list_firings(store: EventStore, policy: str | None = None, limit: int = 100) -> list[Firing]:
    db = store.db
    with db.connection() as conn:
        return conn.cursor(row_factory=class_row(Firing)).execute(
            db.sql("firings", "list_firings"), {"policy": policy, "limit": limit}).fetchall()
