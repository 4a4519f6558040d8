"""``schedule_firings``: one row per (policy, scheduled time), claimed by one scheduler replica.

APScheduler 3 does not coordinate instances, so every replica fires every
period. Each firing first INSERTs its row with ``ON CONFLICT DO NOTHING``;
only the replica whose insert created the row goes on to enqueue the job, and
records the job it started (or why it could not) on the same row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store.postgres import PostgreSQLEventStore


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


_COLUMNS = "policy, scheduled_for, fired_at, replica, job_kind, job_id, status, detail"


def claim_firing(
    store: PostgreSQLEventStore, policy: str, scheduled_for: datetime, replica: str
) -> bool:
    """True when this replica won the firing of ``policy`` at ``scheduled_for``."""
    with store.connection() as conn:
        row = conn.execute(
            f"INSERT INTO {store.table('schedule_firings')} (policy, scheduled_for, replica) "
            "VALUES (%s, %s, %s) ON CONFLICT (policy, scheduled_for) DO NOTHING RETURNING 1",
            [policy, scheduled_for, replica],
        ).fetchone()
    return row is not None


def record_firing(
    store: PostgreSQLEventStore, policy: str, scheduled_for: datetime, *, status: str,
    job_kind: str | None = None, job_id: str | None = None, detail: str | None = None,
) -> None:
    with store.connection() as conn:
        conn.execute(
            f"UPDATE {store.table('schedule_firings')} SET status = %s, job_kind = %s, "
            "job_id = %s, detail = %s WHERE policy = %s AND scheduled_for = %s",
            [status, job_kind, job_id, detail, policy, scheduled_for],
        )


def last_firings(store: PostgreSQLEventStore) -> dict[str, Firing]:
    """The most recent firing of each policy."""
    with store.connection() as conn:
        rows = conn.execute(
            f"SELECT DISTINCT ON (policy) {_COLUMNS} FROM {store.table('schedule_firings')} "
            "ORDER BY policy, scheduled_for DESC"
        ).fetchall()
    return {r[0]: Firing(*r) for r in rows}


def list_firings(
    store: PostgreSQLEventStore, policy: str | None = None, limit: int = 100
) -> list[Firing]:
    with store.connection() as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM {store.table('schedule_firings')} "
            "WHERE (%s::text IS NULL OR policy = %s) ORDER BY scheduled_for DESC LIMIT %s",
            [policy, policy, limit],
        ).fetchall()
    return [Firing(*r) for r in rows]
