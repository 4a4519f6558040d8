"""Jobs and their batches in PostgreSQL: the job engine's storage.

A job is a row of ``jobs``; planning splits it into rows of ``job_batches``,
one per Dramatiq message. The job's status and counts are derived from its
batches (``refresh_job``), under the job row's lock, in the same transaction
as every change of a batch. This module knows nothing of Dramatiq: sending
messages is a callback (``send``) the engine passes in, called while the
batches it sends are locked, so a worker never sees a batch whose message may
not exist, and a failed send leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from ..errors import InvalidJobError, JobNotFoundError
from ..sql import sql_from

JOB_STATUSES = ("starting", "queued", "running", "cancelling", "succeeded", "failed", "cancelled")
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
BATCH_STATUSES = ("pending", "queued", "running", "retrying", "succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class BatchPlan:
    """What a job kind's planner returns for one batch."""

    params: dict[str, Any]
    items: int
    label: str = ""


@dataclass(frozen=True)
class Job:
    job_id: int
    kind: str
    params: dict[str, Any]
    status: str
    created_by: str | None
    items_total: int
    items_done: int
    items_failed: int
    batches_total: int
    batches_succeeded: int
    batches_failed: int
    batches_running: int
    batches_cancelled: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    updated_at: datetime

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def elapsed(self) -> timedelta:
        """Time since the first batch started (until the job finished)."""
        if self.started_at is None:
            return timedelta(0)
        end = self.finished_at or datetime.now(UTC)
        return max(end - self.started_at, timedelta(0))

    @property
    def rate(self) -> float:
        """Items done per second so far."""
        seconds = self.elapsed.total_seconds()
        return self.items_done / seconds if seconds > 0 else 0.0

    @property
    def eta(self) -> timedelta | None:
        """Time left at the current rate; None before the first batch is done."""
        if self.finished:
            return timedelta(0)
        if self.rate <= 0:
            return None
        left = max(self.items_total - self.items_done - self.items_failed, 0)
        return timedelta(seconds=left / self.rate)


@dataclass(frozen=True)
class JobBatch:
    job_id: int
    number: int
    params: dict[str, Any]
    label: str
    items_total: int
    items_done: int
    status: str
    attempts: int
    worker: str | None
    details: dict[str, Any]
    last_error: str | None
    error_item: str | None
    error_traceback: str | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class JobErrorRecord:
    job_id: int
    number: int
    attempt: int
    final: bool
    worker: str | None
    error: str
    item: str | None
    traceback: str | None
    occurred_at: datetime


@dataclass(frozen=True)
class JobDetail:
    job: Job
    batches: list[JobBatch]
    errors: list[JobErrorRecord] = field(default_factory=list)


Send = Callable[[int, list[int]], None]


class JobRepository:
    """Create, read, queue, cancel and refresh jobs, through the store's pool."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def sql(self, name: str) -> str:
        return sql_from("jobs.sql", name, self.store.schema)

    # -- creation -----------------------------------------------------------

    def create(
        self, kind: str, params: dict[str, Any], batches: Sequence[BatchPlan],
        created_by: str | None = None,
    ) -> int:
        """Insert the job ('starting') and its batches ('pending'); the new job id."""
        if not batches:
            raise InvalidJobError(f"a {kind} job needs at least one batch")
        with self.store.connection() as conn, conn.transaction():
            row = conn.execute(self.sql("insert_job"), {
                "kind": kind, "params": Jsonb(params), "created_by": created_by,
                "items_total": sum(b.items for b in batches), "batches_total": len(batches),
            }).fetchone()
            job_id = int(row[0])
            with conn.cursor() as cur:
                cur.executemany(self.sql("insert_batch"), [
                    {"job_id": job_id, "number": i, "params": Jsonb(b.params), "label": b.label,
                     "items_total": b.items}
                    for i, b in enumerate(batches, start=1)
                ])
        return job_id

    def delete(self, job_id: int) -> None:
        with self.store.connection() as conn:
            conn.execute(self.sql("delete_job"), {"job_id": job_id})

    # -- queueing -----------------------------------------------------------

    def queue(
        self, job_id: int, statuses: Sequence[str], send: Send, *, number: int | None = None,
        resume: bool = False,
    ) -> list[int]:
        """Send the batches in ``statuses`` and mark them 'queued'; the numbers sent.

        The rows stay locked while ``send`` runs: a worker that receives a
        message early waits for the commit, and if ``send`` raises, nothing
        changes. ``resume`` also withdraws a cancel request.
        """
        self.get(job_id)
        with self.store.connection() as conn, conn.transaction():
            rows = conn.execute(self.sql("select_for_queue"), {
                "job_id": job_id, "statuses": list(statuses), "number": number,
            }).fetchall()
            numbers = [int(r[0]) for r in rows]
            if not numbers:
                return []
            send(job_id, numbers)
            conn.execute(self.sql("mark_queued"), {"job_id": job_id, "numbers": numbers})
            if resume:
                conn.execute(self.sql("clear_cancel"), {"job_id": job_id})
            self.refresh(conn, job_id)
        return numbers

    def requeue(
        self, job_id: int, send: Send, *, number: int | None = None,
        include_cancelled: bool = False, stale: bool = False,
    ) -> list[int]:
        """Send failed (and never-sent) batches again, or one batch with ``number``."""
        statuses = ["failed", "pending"]
        if include_cancelled or number is not None:
            statuses.append("cancelled")
        if stale:
            return self._requeue_stale(job_id, send, number)
        sent = self.queue(job_id, statuses, send, number=number,
                          resume=include_cancelled or number is not None)
        if number is not None and not sent:
            batch = next((b for b in self.batches(job_id) if b.number == number), None)
            if batch is None:
                raise InvalidJobError(f"job {job_id} has no batch {number}")
            raise InvalidJobError(
                f"batch {number} of job {job_id} is {batch.status}: only failed, cancelled "
                "or never-sent batches can be requeued"
            )
        return sent

    def _requeue_stale(self, job_id: int, send: Send, number: int | None) -> list[int]:
        # After a Redis loss: batches that should have a message but may not.
        # Those whose runner is alive (claim held) are left alone; sending a
        # message twice is harmless, a batch runs at most once.
        from .batch_runs import claim_key

        self.get(job_id)
        with self.store.connection() as conn, conn.transaction():
            rows = conn.execute(self.sql("select_for_queue"), {
                "job_id": job_id, "statuses": ["pending", "queued", "running", "retrying"],
                "number": number,
            }).fetchall()
            numbers = []
            for num, _status in rows:
                key = claim_key(self.store.schema, job_id, int(num))
                if conn.execute(self.sql("probe_claim"), {"key": key}).fetchone()[0]:
                    numbers.append(int(num))
            if numbers:
                send(job_id, numbers)
                conn.execute(self.sql("mark_queued"), {"job_id": job_id, "numbers": numbers})
                self.refresh(conn, job_id)
        return numbers

    def cancel(self, job_id: int) -> list[int]:
        """Cancel the batches not started yet (running ones finish); their numbers."""
        self.get(job_id)
        with self.store.connection() as conn, conn.transaction():
            numbers = [int(r[0]) for r in conn.execute(self.sql("cancel_batches"),
                                                       {"job_id": job_id})]
            conn.execute(self.sql("request_cancel"), {"job_id": job_id})
            self.refresh(conn, job_id)
        return numbers

    def refresh(self, conn: Any, job_id: int) -> str:
        """Re-derive the job's status and counts (inside the caller's transaction)."""
        conn.execute(self.sql("lock_job"), {"job_id": job_id})
        row = conn.execute(self.sql("refresh_job"), {"job_id": job_id}).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        return str(row[0])

    # -- reads ----------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        with self.store.connection() as conn:
            row = conn.execute(self.sql("get_job"), {"job_id": job_id}).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        return Job(*row)

    def list_jobs(
        self, status: str | None = None, kind: str | None = None, limit: int = 50
    ) -> list[Job]:
        if status is not None and status not in JOB_STATUSES:
            raise InvalidJobError(
                f"unknown job status {status!r} (one of: {', '.join(JOB_STATUSES)})"
            )
        with self.store.connection() as conn:
            rows = conn.execute(self.sql("list_jobs"),
                                {"status": status, "kind": kind, "limit": limit}).fetchall()
        return [Job(*r) for r in rows]

    def batches(self, job_id: int) -> list[JobBatch]:
        with self.store.connection() as conn:
            rows = conn.execute(self.sql("list_batches"), {"job_id": job_id}).fetchall()
        return [JobBatch(*r) for r in rows]

    def errors(self, job_id: int) -> list[JobErrorRecord]:
        with self.store.connection() as conn:
            rows = conn.execute(self.sql("list_errors"), {"job_id": job_id}).fetchall()
        return [JobErrorRecord(*r) for r in rows]

    def detail(self, job_id: int) -> JobDetail:
        return JobDetail(self.get(job_id), self.batches(job_id), self.errors(job_id))
