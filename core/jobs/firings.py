"""``schedule_firings``: one row per (policy, scheduled time), claimed by one scheduler replica.

APScheduler 3 does not coordinate instances, so every replica fires every
period. Each firing first INSERTs its row with ``ON CONFLICT DO NOTHING``;
only the replica whose insert created the row goes on to enqueue the job, and
records the job it started (or why it could not) on the same row.

A replica killed between its claim and the record leaves the row 'claimed'
with no job. After a grace period another replica takes it over
(:func:`take_over_firing`: a conditional UPDATE, so one replica wins) and
enqueues it. The statements are in ``core/sql/firings.sql``.
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
    replica: str | None = None,
) -> bool:
    """Record the firing's outcome; with ``replica``, only while that replica holds the claim
    (False when another replica took it over meanwhile)."""
    db = store.db
    with db.connection() as conn:
        row = conn.execute(db.sql("firings", "record_firing"), {
            "status": status, "job_kind": job_kind, "job_id": job_id, "detail": detail,
            "policy": policy, "scheduled_for": scheduled_for, "replica": replica,
        }).fetchone()
    return row is not None


def stale_claims(store: EventStore, policies: list[str], grace: float) -> list[tuple[str, datetime]]:
    """Firings of ``policies`` claimed more than ``grace`` seconds ago and still without a job."""
    db = store.db
    with db.connection() as conn:
        rows = conn.execute(db.sql("firings", "stale_claims"),
                            {"policies": policies, "grace": grace}).fetchall()
    return [(policy, scheduled_for) for (policy, scheduled_for) in rows]


def take_over_firing(
    store: EventStore, policy: str, scheduled_for: datetime, replica: str, grace: float,
) -> str | None:
    """Claim a stale firing for ``replica``; its detail ('taken over from X'), or None if lost."""
    db = store.db
    with db.connection() as conn:
        row = conn.execute(db.sql("firings", "take_over_firing"), {
            "policy": policy, "scheduled_for": scheduled_for, "replica": replica, "grace": grace,
        }).fetchone()
    return None if row is None else str(row[0])


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
