"""Archive runs in PostgreSQL: plan a run into segments, and read runs back.

Planning fixes the exact events of every segment (``archive_items``) in one
transaction, from the rows its snapshot sees, so a segment's content never
changes afterwards (an event that commits later is left for the next run): a
segment exported twice gives the same file, and deletion removes exactly the
rows that were archived. One unfinished run per policy at a time: planning a
policy that has one returns it (the next run resumes the failed one).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.rows import class_row, dict_row

from ..errors import ArchiveError
from .access import check_allowed
from .policies import ArchivalPolicy
from .segments import DATA_SUFFIX, MANIFEST_SUFFIX, segment_name
from .selection import select

if TYPE_CHECKING:
    from ..store.persistence import EventStore


@dataclass(frozen=True)
class ArchiveRun:
    run_id: str
    policy: str
    strategy: str
    target_url: str
    policy_spec: dict[str, Any]
    horizon: int
    cutoff: datetime | None
    partitions: list[str]
    event_count: int
    segment_count: int
    status: str
    deleted_events: int
    dropped_partitions: list[str]
    manifest_url: str | None
    job_id: str | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None

    @property
    def archival_policy(self) -> ArchivalPolicy:
        return ArchivalPolicy.from_dict(self.policy_spec)

    @property
    def folder(self) -> str:
        return f"{self.policy}/{self.run_id}"

    def data_path(self, number: int) -> str:
        return f"{self.folder}/{segment_name(number)}{DATA_SUFFIX}"

    def manifest_path(self, number: int) -> str:
        return f"{self.folder}/{segment_name(number)}{MANIFEST_SUFFIX}"


@dataclass(frozen=True)
class ArchiveSegment:
    number: int
    event_count: int
    status: str
    data_path: str | None
    manifest_path: str | None
    sha256: str | None
    raw_bytes: int | None
    stored_bytes: int | None
    first_position: str | None
    last_position: str | None
    min_created_at: datetime | None
    max_created_at: datetime | None
    attempts: int
    last_error: str | None
    verified_at: datetime | None
    # the range of its events in the global order, fixed at planning (migration 0013;
    # None for segments planned before it)
    first_tx: int | None = None
    first_gp: int | None = None
    last_tx: int | None = None
    last_gp: int | None = None


def _run(row: dict[str, Any]) -> ArchiveRun:
    """An ArchiveRun from a ``run``/``runs`` row (a dict_row)."""
    return ArchiveRun(**{
        **row,
        "horizon": int(row["horizon"]),
        "partitions": list(row["partitions"] or []),
        "dropped_partitions": list(row["dropped_partitions"] or []),
    })


def get_run(store: EventStore, run_id: str) -> ArchiveRun:
    try:
        uuid.UUID(str(run_id))
    except ValueError:
        raise ValueError(f"invalid archive run id {run_id!r}: expected a UUID") from None
    with store.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(store.db.sql("archive", "run"), {"run_id": str(run_id)}).fetchone()
    if row is None:
        raise ArchiveError(f"no archive run {run_id}")
    return _run(row)


def list_runs(
    store: EventStore, policy: str | None = None, limit: int = 50
) -> list[ArchiveRun]:
    with store.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            store.db.sql("archive", "runs"), {"policy": policy, "limit": limit}
        ).fetchall()
    return [_run(r) for r in rows]


def list_segments(store: EventStore, run_id: str) -> list[ArchiveSegment]:
    with store.db.connection() as conn, conn.cursor(row_factory=class_row(ArchiveSegment)) as cur:
        return cur.execute(store.db.sql("archive", "segments"), {"run_id": run_id}).fetchall()


def plan_run(
    store: EventStore,
    policy: ArchivalPolicy,
    now: datetime | None = None,
    job_id: str | None = None,
) -> tuple[ArchiveRun, bool]:
    """Plan a run of ``policy`` (or find its unfinished one); (run, resumed).

    ConfigurationError, before anything is planned, when the configuration does
    not allow the policy's target."""
    check_allowed(policy.target_url)
    schema = store.db.schema
    with store.db.connection() as conn, conn.transaction():
        conn.execute(
            store.db.sql("archive", "lock_policy"), {"lock_key": f"evstore-archive:{schema}:{policy.name}"}
        )
        found = conn.execute(store.db.sql("archive", "unfinished_run"), {"policy": policy.name}).fetchone()
        if found is not None:
            (run_id,) = found
            resumed = True
        else:
            resumed = False
            run_id = str(uuid.uuid4())
            horizon_row = conn.execute(store.db.sql("archive", "horizon")).fetchone()
            assert horizon_row is not None
            (horizon,) = horizon_row
            sel = select(policy, store, now)
            conn.execute(store.db.sql("archive", "insert_run"), {
                "run_id": run_id, "policy": policy.name, "strategy": policy.strategy.value,
                "target_url": policy.target_url, "policy_spec": json.dumps(policy.to_dict()),
                "horizon": horizon, "cutoff": sel.cutoff,
                "partitions": [p.name for p in sel.partitions], "job_id": job_id,
            })
            conn.execute(store.db.sql("archive", "plan_table"))
            conn.execute(
                store.db.sql("archive", "plan_selection", predicate=sel.predicate, join=sel.join),
                {**sel.params, "segment_size": policy.segment_size},
            )
            conn.execute(store.db.sql("archive", "insert_segments"),
                         {"run_id": run_id, "segment_size": policy.segment_size})
            conn.execute(store.db.sql("archive", "insert_items"), {"run_id": run_id})
            conn.execute(store.db.sql("archive", "count_run"), {"run_id": run_id})
    if not resumed:
        with store.db.connection() as conn:
            conn.execute(store.db.sql("archive", "analyze_items"))
    return get_run(store, run_id), resumed


def set_run_error(store: EventStore, run_id: str, error: str | None) -> None:
    run = get_run(store, run_id)
    with store.db.connection() as conn:
        conn.execute(
            store.db.sql("archive", "run_status"),
            {"run_id": run_id, "status": run.status, "error": error},
        )


def attach_job(store: EventStore, run_id: str, job_id: str) -> None:
    """Record the job that runs (or resumes) this run."""
    with store.db.connection() as conn:
        conn.execute(store.db.sql("archive", "run_job"), {"run_id": run_id, "job_id": job_id})
