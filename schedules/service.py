"""The scheduler: APScheduler 3 fires the schedules; PostgreSQL decides who enqueues.

Each firing of schedule S for scheduled time T:

1. INSERT (S, T) into ``schedule_firings`` ... ON CONFLICT DO NOTHING;
2. only the replica whose insert won enqueues S's job on the job engine;
3. it records the job id (or the error) on the row.

So any number of replicas may run: each period fires once. T is the
trigger's own time (cron times, or interval times counted from a fixed
anchor), the same on every replica. A firing only enqueues; the work runs on
the workers.

Missed firings: APScheduler coalesces the firings a running replica missed
into one (``coalesce=True``). For periods missed while every replica was down,
the rule is the same: at start-up each schedule that has fired before and
whose latest due time has no firing fires once, for that latest due time.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from evstore.core.jobs.firings import claim_firing, last_firings, record_firing
from evstore.core.store.persistence import EventStore

from .config import Schedule, load_schedules

if TYPE_CHECKING:
    from evstore.workers.engine import JobEngine

log = structlog.get_logger("evstore.schedules")
# (schedule) -> (job kind, job id): enqueue the schedule's job.
Enqueue = Callable[[Schedule], tuple[str, str]]


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def engine_enqueue(engine: JobEngine) -> Enqueue:
    """Enqueue on the job engine (imports the job kinds it needs)."""

    def enqueue(schedule: Schedule) -> tuple[str, str]:
        created_by = f"scheduler:{schedule.name}"
        if schedule.task == "archive":
            from evstore.workers.archive_jobs import KIND, start_archive_job

            return KIND, str(start_archive_job(engine, schedule.params["policy"], created_by))
        if schedule.task == "partitions":
            from evstore.workers.maintenance_jobs import KIND as PARTITIONS

            job = engine.start(PARTITIONS, {"months_ahead": schedule.params["months_ahead"]},
                               created_by=created_by)
            return PARTITIONS, str(job)
        kind = schedule.params["job_kind"]
        return kind, str(engine.start(kind, dict(schedule.params["params"]), created_by=created_by))

    return enqueue


@dataclass(frozen=True)
class FiringOutcome:
    schedule: str
    scheduled_for: datetime
    claimed: bool
    job_kind: str | None = None
    job_id: str | None = None
    error: str | None = None


class SchedulerService:
    """Runs every schedule on APScheduler; see the module's docstring."""

    def __init__(self, store: EventStore, enqueue: Enqueue, schedules: dict[str, Schedule] | None = None,
                 replica: str | None = None,
                 on_firing: Callable[[FiringOutcome], None] | None = None) -> None:
        self.store = store
        self.enqueue = enqueue
        self.schedules = schedules if schedules is not None else load_schedules()
        self.replica = replica or replica_name()
        self.on_firing = on_firing
        self.scheduler: Any = None
        self._stopped = threading.Event()

    def fire(self, schedule: Schedule, scheduled_for: datetime) -> FiringOutcome:
        """One firing: claim (S, T); if won, enqueue and record."""
        bound = log.bind(schedule=schedule.name, scheduled_for=scheduled_for.isoformat(),
                         replica=self.replica)
        if not claim_firing(self.store, schedule.name, scheduled_for, self.replica):
            bound.info("firing.taken")
            outcome = FiringOutcome(schedule.name, scheduled_for, False)
        else:
            try:
                kind, job_id = self.enqueue(schedule)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                record_firing(self.store, schedule.name, scheduled_for, status="failed",
                              detail=error)
                bound.error("firing.failed", error=error)
                outcome = FiringOutcome(schedule.name, scheduled_for, True, error=error)
            else:
                record_firing(self.store, schedule.name, scheduled_for, status="enqueued",
                              job_kind=kind, job_id=job_id)
                bound.info("firing.enqueued", job_kind=kind, job_id=job_id)
                outcome = FiringOutcome(schedule.name, scheduled_for, True, kind, job_id)
        if self.on_firing:
            self.on_firing(outcome)
        return outcome

    def _run(self, name: str) -> None:
        schedule = self.schedules[name]
        due = schedule.trigger.latest_due(datetime.now(UTC))
        if due is not None:
            self.fire(schedule, due)

    def catch_up(self, now: datetime | None = None) -> list[FiringOutcome]:
        """Fire once for each schedule whose latest due time was missed (see module doc)."""
        now = now or datetime.now(UTC)
        last = last_firings(self.store)
        out = []
        for name, schedule in self.schedules.items():
            due = schedule.trigger.latest_due(now)
            previous = last.get(name)
            if due is not None and previous is not None and previous.scheduled_for < due:
                out.append(self.fire(schedule, due))
        return out

    def build(self, blocking: bool) -> Any:
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.schedulers.blocking import BlockingScheduler

        cls = BlockingScheduler if blocking else BackgroundScheduler
        scheduler = cls(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None,
        })
        for name, schedule in self.schedules.items():
            scheduler.add_job(self._run, schedule.trigger.apscheduler(), args=[name], id=name,
                              name=schedule.describe())
        self.scheduler = scheduler
        return scheduler

    def start(self, blocking: bool = False) -> None:
        """Catch up, then run the triggers (``blocking`` runs until stop() or a signal)."""
        self.catch_up()
        scheduler = self.build(blocking)
        log.info("scheduler.started", replica=self.replica, schedules=sorted(self.schedules))
        scheduler.start()

    def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
