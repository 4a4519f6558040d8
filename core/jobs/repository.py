"""Jobs and their batches in PostgreSQL: the job engine's storage.

A job is a row of ``jobs``; planning splits it into rows of ``job_batches``,
one per Dramatiq message. The job's status and counts are derived from its
batches (``refresh_job``), under the job row's lock, in the same transaction
as every change of a batch. This module knows nothing of Dramatiq: sending
messages is a callback (``send``) the engine passes in, called while the
batches it sends are locked, so a worker never sees a batch whose message may
not exist, and a failed send leaves nothing behind.

The records (``Job``, ``JobBatch`` ...) live in :mod:`.model`; ``BatchPlan``,
``Job`` and ``JobDetail`` are importable from here too (the CLI and
docs/jobs.md import them so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from ..errors import InvalidJobError, JobNotFoundError
from ..store.persistence import EventStore
from .claims import runner_gone
from .model import (
    JOB_STATUSES,
    BatchPlan,
    Job,
    JobBatch,
    JobDetail,
    JobErrorRecord,
    Send,
)

__all__ = ["MAX_LIST_LIMIT", "BatchPlan", "Job", "JobDetail", "JobRepository"]

MAX_LIST_LIMIT = 10_000  # jobs in one listing


class JobRepository:
    """Create, read, queue, cancel and refresh jobs, through the store's database."""

    def __init__(self, store: EventStore) -> None:
        self.db = store.db

    # -- creation -----------------------------------------------------------

    def create(
        self, kind: str, params: dict[str, Any], batches: Sequence[BatchPlan],
        created_by: str | None = None,
    ) -> int:
        """Insert the job ('starting') and its batches ('pending'); the new job id."""
        if not batches:
            raise InvalidJobError(f"a {kind} job needs at least one batch")
        with self.db.connection() as conn, conn.transaction():
            row = conn.execute(self.db.sql("jobs", "insert_job"), {
                "kind": kind, "params": Jsonb(params), "created_by": created_by,
                "items_total": sum(b.items for b in batches), "batches_total": len(batches),
            }).fetchone()
            assert row is not None
            (new_id,) = row
            job_id = int(new_id)
            with conn.cursor() as cur:
                cur.executemany(self.db.sql("jobs", "insert_batch"), [
                    {"job_id": job_id, "number": i, "params": Jsonb(b.params), "label": b.label,
                     "items_total": b.items}
                    for i, b in enumerate(batches, start=1)
                ])
        return job_id

    def delete(self, job_id: int) -> None:
        with self.db.connection() as conn:
            conn.execute(self.db.sql("jobs", "delete_job"), {"job_id": job_id})

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
        with self.db.connection() as conn, conn.transaction():
            numbers = self._select_for_queue(conn, job_id, statuses, number)
            if not numbers:
                return []
            self.send_locked(conn, job_id, numbers, send, resume=resume)
        return numbers

    def send_locked(
        self, conn: psycopg.Connection, job_id: int, numbers: list[int], send: Send, *,
        resume: bool = False,
    ) -> None:
        """Inside the transaction that locked the batch rows: send, mark 'queued', refresh."""
        send(job_id, numbers)
        conn.execute(self.db.sql("jobs", "mark_queued"), {"job_id": job_id, "numbers": numbers})
        if resume:
            conn.execute(self.db.sql("jobs", "clear_cancel"), {"job_id": job_id})
        self.refresh(conn, job_id)

    def _select_for_queue(
        self, conn: psycopg.Connection, job_id: int, statuses: Sequence[str], number: int | None,
    ) -> list[int]:
        """The numbers of the batches in ``statuses`` (or batch ``number``), locked."""
        rows = conn.execute(self.db.sql("jobs", "select_for_queue"), {
            "job_id": job_id, "statuses": list(statuses), "number": number,
        }).fetchall()
        return [int(num) for (num,) in rows]

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
        self.get(job_id)
        with self.db.connection() as conn, conn.transaction():
            candidates = self._select_for_queue(
                conn, job_id, ["pending", "queued", "running", "retrying"], number)
            numbers = [num for num in candidates if runner_gone(conn, self.db, job_id, num)]
            if numbers:
                self.send_locked(conn, job_id, numbers, send)
        return numbers

    def cancel(self, job_id: int) -> list[int]:
        """Cancel the batches not started yet (running ones finish); their numbers."""
        self.get(job_id)
        with self.db.connection() as conn, conn.transaction():
            numbers = [int(num) for (num,) in conn.execute(self.db.sql("jobs", "cancel_batches"),
                                                           {"job_id": job_id})]
            conn.execute(self.db.sql("jobs", "request_cancel"), {"job_id": job_id})
            self.refresh(conn, job_id)
        return numbers

    def refresh(self, conn: psycopg.Connection, job_id: int) -> str:
        """Re-derive the job's status and counts (inside the caller's transaction)."""
        conn.execute(self.db.sql("jobs", "lock_job"), {"job_id": job_id})
        row = conn.execute(self.db.sql("jobs", "refresh_job"), {"job_id": job_id}).fetchone()
        if row is None:
            raise JobNotFoundError(job_id)
        (status,) = row
        return str(status)

    # -- reads ----------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        with self.db.connection() as conn:
            job = conn.cursor(row_factory=class_row(Job)).execute(
                self.db.sql("jobs", "get_job"), {"job_id": job_id}).fetchone()
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    def find_created_by(self, created_by: str) -> int | None:
        """The first job whose ``created_by`` is exactly this (a scheduler firing's tag)."""
        with self.db.connection() as conn:
            row = conn.execute(self.db.sql("jobs", "job_by_creator"),
                               {"created_by": created_by}).fetchone()
        return None if row is None else int(row[0])

    def list_jobs(
        self, status: str | None = None, kind: str | None = None, limit: int = 50
    ) -> list[Job]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidJobError(f"limit must be an integer from 1 to {MAX_LIST_LIMIT} (got {limit!r})")
        if status is not None and status not in JOB_STATUSES:
            raise InvalidJobError(
                f"unknown job status {status!r} (one of: {', '.join(JOB_STATUSES)})"
            )
        with self.db.connection() as conn:
            return conn.cursor(row_factory=class_row(Job)).execute(
                self.db.sql("jobs", "list_jobs"), {"status": status, "kind": kind, "limit": limit}).fetchall()

    def batches(self, job_id: int) -> list[JobBatch]:
        with self.db.connection() as conn:
            return conn.cursor(row_factory=class_row(JobBatch)).execute(
                self.db.sql("jobs", "list_batches"), {"job_id": job_id}).fetchall()

    def errors(self, job_id: int) -> list[JobErrorRecord]:
        with self.db.connection() as conn:
            return conn.cursor(row_factory=class_row(JobErrorRecord)).execute(
                self.db.sql("jobs", "list_errors"), {"job_id": job_id}).fetchall()

    def detail(self, job_id: int) -> JobDetail:
        return JobDetail(self.get(job_id), self.batches(job_id), self.errors(job_id))
