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

A replica killed between steps 1 and 3 leaves (S, T) claimed with no job.
Every replica looks for such claims older than a grace period
(EVSTORE_SCHEDULER_CLAIM_GRACE seconds, default 300) at start-up and every
half grace period; one takes the claim over (a conditional UPDATE) and
enqueues it, reusing the job the dead replica had created if there is one (a
firing's job is ``created_by`` ``scheduler:S@T``). So a period is enqueued
once unless a replica stays stuck longer than the grace period between its
claim and its enqueue.
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
from evstore.core.errors import ConfigurationError
from evstore.core.jobs.firings import (
    claim_firing,
    last_firings,
    record_firing,
    stale_claims,
    take_over_firing,
)
from evstore.core.store.persistence import EventStore
from evstore.workers.scrub import scrub

from .config import Schedule, load_schedules

if TYPE_CHECKING:
    from evstore.workers.engine import JobEngine

log = structlog.get_logger("evstore.schedules")
# (schedule, scheduled time, resume) -> (job kind, job id): enqueue the firing's job;
# ``resume``: a taken-over firing, whose job the dead replica may have created.
Enqueue = Callable[[Schedule, datetime, bool], tuple[str, str]]
GRACE_VARIABLE = "EVSTORE_SCHEDULER_CLAIM_GRACE"
DEFAULT_GRACE = 300.0
# Test only: pause forever right after winning a claim (a test then kills the process).
PAUSE_AFTER_CLAIM = "EVSTORE_TEST_PAUSE_AFTER_CLAIM"


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_grace() -> float:
    """Seconds after which a claim with no job is taken over (EVSTORE_SCHEDULER_CLAIM_GRACE)."""
    text = os.environ.get(GRACE_VARIABLE, "").strip()
    if not text:
        return DEFAULT_GRACE
    try:
        grace = float(text)
    except ValueError:
        grace = -1.0
    if not 0 < grace <= 86_400:
        raise ConfigurationError(
            f"{GRACE_VARIABLE}: must be a number of seconds from 0 (excluded) to 86400 "
            f"(got {text[:40]!r})")
    return grace


def firing_tag(schedule: str, scheduled_for: datetime) -> str:
    """``created_by`` of a firing's job: finds it again after a takeover."""
    return f"scheduler:{schedule}@{scheduled_for.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def safe_detail(exc: BaseException) -> str:
    """An enqueue error as stored and logged: type and message, URLs reduced to their host."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return str(scrub(text, quoted=False))


def engine_enqueue(engine: JobEngine) -> Enqueue:
    """Enqueue on the job engine (imports the job kinds it needs)."""

    def enqueue(schedule: Schedule, scheduled_for: datetime, resume: bool = False) -> tuple[str, str]:
        created_by = firing_tag(schedule.name, scheduled_for)
        if resume:
            existing = engine.repo.find_created_by(created_by)
            if existing is not None:  # created before its replica died: send what it did not
                engine.send_unsent(existing)
                return engine.get(existing).kind, str(existing)
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
                 on_firing: Callable[[FiringOutcome], None] | None = None,
                 grace: float | None = None) -> None:
        self.store = store
        self.enqueue = enqueue
        self.schedules = schedules if schedules is not None else load_schedules()
        self.replica = replica or replica_name()
        self.on_firing = on_firing
        self.grace = claim_grace() if grace is None else grace
        self.scheduler: Any = None
        self._stopped = threading.Event()
        self._blocking = False

    def fire(self, schedule: Schedule, scheduled_for: datetime) -> FiringOutcome:
        """One firing: claim (S, T); if won, enqueue and record."""
        if not claim_firing(self.store, schedule.name, scheduled_for, self.replica):
            self._log(schedule, scheduled_for).info("firing.taken")
            outcome = FiringOutcome(schedule.name, scheduled_for, False)
            if self.on_firing:
                self.on_firing(outcome)
            return outcome
        _pause_if_testing()
        return self._enqueue_claimed(schedule, scheduled_for, resume=False)

    def recover(self) -> list[FiringOutcome]:
        """Take over and enqueue the firings claimed by a replica that died before enqueueing."""
        out = []
        for policy, scheduled_for in stale_claims(self.store, sorted(self.schedules), self.grace):
            taken = take_over_firing(self.store, policy, scheduled_for, self.replica, self.grace)
            if taken is None:
                continue  # another replica took it over first
            self._log(self.schedules[policy], scheduled_for).warning("firing.taken_over",
                                                                     detail=taken)
            out.append(self._enqueue_claimed(self.schedules[policy], scheduled_for, resume=True))
        return out

    def _recover_quietly(self) -> None:
        try:
            self.recover()
        except Exception as exc:  # the database may be down: try again next time
            log.warning("firings.recover_failed", error=safe_detail(exc), replica=self.replica)

    def _log(self, schedule: Schedule, scheduled_for: datetime) -> Any:
        return log.bind(schedule=schedule.name, scheduled_for=scheduled_for.isoformat(),
                        replica=self.replica)

    def _enqueue_claimed(self, schedule: Schedule, scheduled_for: datetime, *,
                         resume: bool) -> FiringOutcome:
        """This replica holds the claim of (S, T): enqueue its job and record it."""
        bound = self._log(schedule, scheduled_for)
        try:
            kind, job_id = self.enqueue(schedule, scheduled_for, resume)
        except Exception as exc:
            error = safe_detail(exc)
            record_firing(self.store, schedule.name, scheduled_for, status="failed",
                          detail=error, replica=self.replica)
            bound.error("firing.failed", error=error)
            outcome = FiringOutcome(schedule.name, scheduled_for, True, error=error)
        else:
            if not record_firing(self.store, schedule.name, scheduled_for, status="enqueued",
                                 job_kind=kind, job_id=job_id, replica=self.replica):
                bound.warning("firing.claim_lost", job_kind=kind, job_id=job_id)
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

    def build(self) -> Any:
        """A BackgroundScheduler with one job per schedule and the stale-claim recovery."""
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        scheduler = BackgroundScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None,
        })
        for name, schedule in self.schedules.items():
            scheduler.add_job(self._run, schedule.trigger.apscheduler(), args=[name], id=name,
                              name=schedule.describe())
        if self.schedules:
            scheduler.add_job(self._recover_quietly, IntervalTrigger(seconds=max(self.grace / 2, 0.5)),
                              id="evstore:recover-claims", name="take over stale claims")
        self.scheduler = scheduler
        return scheduler

    def start(self, blocking: bool = False) -> None:
        """Catch up, then run the triggers (``blocking``: until stop(), a signal's handler may call it).

        A stop() that comes before the triggers run (during the catch-up) is
        not lost: the triggers then never start.
        """
        self._blocking = blocking
        self.catch_up()
        self._recover_quietly()
        if self._stopped.is_set():
            return
        scheduler = self.build()
        scheduler.start()
        log.info("scheduler.started", replica=self.replica, schedules=sorted(self.schedules))
        if not blocking:
            if self._stopped.is_set():
                self._shutdown()
            return
        try:
            while not self._stopped.wait(0.5):
                pass
        finally:
            self._shutdown()

    def stop(self) -> None:
        """Stop firing (safe in a signal handler: a blocking start() shuts down in its thread)."""
        self._stopped.set()
        if not self._blocking:
            self._shutdown()

    def _shutdown(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)


def _pause_if_testing() -> None:
    """Test hook (EVSTORE_TEST_PAUSE_AFTER_CLAIM=1): stop between claim and enqueue, for good."""
    if os.environ.get(PAUSE_AFTER_CLAIM) == "1":
        log.warning("firing.paused_after_claim", pid=os.getpid())
        threading.Event().wait()  # for good: the test kills the process here
