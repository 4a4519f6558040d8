"""The job engine's records: jobs, their batches, errors, and the identity of a started batch.

Plain data, no SQL and no Dramatiq: :mod:`.repository` reads and writes them,
:mod:`.batch_runs` runs one batch, and the workers build their
``BatchContext`` on :class:`StartedBatch`. A job's status and counts are never
set directly; they are derived from its batches (see ``refresh_job`` in
``core/sql/jobs.sql``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

JOB_STATUSES = ("starting", "queued", "running", "cancelling", "succeeded", "failed", "cancelled")
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
BATCH_STATUSES = ("pending", "queued", "running", "retrying", "succeeded", "failed", "cancelled")

# (job id, batch numbers) -> None: send one message per batch (the engine's broker).
Send = Callable[[int, list[int]], None]


@dataclass(frozen=True)
class BatchPlan:
    """What a job kind's planner returns for one batch."""

    params: dict[str, Any]
    items: int
    label: str = ""


@dataclass
class StartedBatch:
    """One batch of one job, started at an attempt: who it is and what it holds.

    :meth:`evstore.core.jobs.batch_runs.BatchRun.start` returns it; the
    workers' ``BatchContext`` extends it with the run's connection and store.
    """

    job_id: int
    number: int
    attempt: int
    kind: str
    job_params: dict[str, Any]
    params: dict[str, Any]
    label: str
    items_total: int

    @property
    def batch_id(self) -> str:
        """A stable id of this batch, for idempotency keys outside PostgreSQL."""
        return f"{self.job_id}:{self.number}"


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
