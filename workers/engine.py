"""The job engine: start a job, run one of its batches, cancel, requeue, watch.

Producers (the command line, a service, a scheduler firing) call
:meth:`JobEngine.start`: the kind plans the job, the job and its batches are
inserted, and one Dramatiq message per batch is sent while the batch rows are
locked. Workers call :meth:`JobEngine.run_batch` for each message (see
:mod:`evstore.core.jobs.batch_runs` for why a batch runs at most once).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from evstore.core.errors import (
    BrokerUnavailableError,
    ConfigurationError,
    JobError,
)
from evstore.core.jobs.batch_runs import (
    BatchRun,
    BatchSuperseded,
    sweep_orphans,
    sweep_stale_retries,
)
from evstore.core.jobs.model import Job, JobDetail
from evstore.core.jobs.repository import JobRepository
from evstore.core.store.persistence import EventStore

from .kinds import BatchContext, JobKind, get_job_kind
from .scrub import safe_error, safe_traceback
from .settings import JobSettings, load_job_settings

if TYPE_CHECKING:
    from dramatiq import Broker

ACTOR_NAME = "evstore_run_batch"

log = structlog.get_logger("evstore.jobs")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def traceback_summary(exc: BaseException) -> str:
    """The frames and scrubbed lines of ``exc``'s chain (see :mod:`.scrub`)."""
    kept = getattr(exc, "evstore_traceback", None)
    return kept if isinstance(kept, str) else safe_traceback(exc, getattr(exc, "evstore_values", ()))


def error_text(exc: BaseException) -> str:
    """``Type: scrubbed first line of the message``: what is stored and logged of an error."""
    return safe_error(exc, getattr(exc, "evstore_values", ()))


class BatchAttemptFailed(Exception):
    """What a worker's actor raises for a failed attempt: the scrubbed error, no cause.

    Dramatiq logs the exception an actor raises and copies its traceback into
    the message it retries or dead-letters; this one carries ids and scrubbed
    text only (``from None``: the original, with its data, is not chained).
    """

    def __init__(self, error: str, *, item: str | None, attempt: int | None,
                 traceback: str | None = None) -> None:
        super().__init__(error)
        self.item = item
        self.evstore_attempt = attempt
        self.evstore_error = error  # already "Type: scrubbed message"
        self.evstore_traceback = traceback  # the original's, scrubbed

    @classmethod
    def of(cls, exc: Exception) -> BatchAttemptFailed:
        if isinstance(exc, cls):
            return exc
        return cls(error_text(exc), item=getattr(exc, "item", None),
                   attempt=getattr(exc, "evstore_attempt", None), traceback=traceback_summary(exc))


class JobEngine:
    def __init__(
        self, store: EventStore, broker: Broker | None = None, settings: JobSettings | None = None,
    ) -> None:
        self.store = store
        self.broker = broker
        self.settings = settings or load_job_settings()
        self.repo = JobRepository(store)

    # -- producers ----------------------------------------------------------

    def start(self, kind: str | JobKind, params: dict[str, Any], created_by: str | None = None) -> int:
        """Plan and enqueue a job; its id. Nothing is left behind if this raises."""
        job_kind = kind if isinstance(kind, JobKind) else get_job_kind(kind)
        self._check_broker()
        plan = job_kind.plan(self.store, dict(params))
        job_id: int = self.repo.create(job_kind.name, plan.params, plan.batches, created_by)
        try:
            self.repo.queue(job_id, ["pending"], self._send)
        except BaseException:
            # The rows were locked while sending: no worker ran anything.
            self.repo.delete(job_id)
            raise
        log.info("job.started", job_id=job_id, kind=job_kind.name, batches=len(plan.batches),
                 items=sum(b.items for b in plan.batches))
        return job_id

    def send_unsent(self, job_id: int) -> list[int]:
        """Send the batches of a job that were created but never sent (its producer died)."""
        self._check_broker()
        sent: list[int] = self.repo.queue(job_id, ["pending"], self._send)
        return sent

    def cancel(self, job_id: int) -> list[int]:
        """Batches not started are cancelled; running ones finish. The cancelled numbers."""
        numbers: list[int] = self.repo.cancel(job_id)
        log.info("job.cancelled", job_id=job_id, batches=len(numbers))
        return numbers

    def requeue(self, job_id: int, number: int | None = None, *, include_cancelled: bool = False,
                stale: bool = False) -> list[int]:
        """Send failed batches (or batch ``number``) again; the numbers sent."""
        self._check_broker()
        numbers: list[int] = self.repo.requeue(job_id, self._send, number=number,
                                               include_cancelled=include_cancelled, stale=stale)
        log.info("job.requeued", job_id=job_id, batches=numbers)
        return numbers

    def get(self, job_id: int) -> Job:
        return self.repo.get(job_id)

    def detail(self, job_id: int) -> JobDetail:
        return self.repo.detail(job_id)

    def list_jobs(self, status: str | None = None, kind: str | None = None, limit: int = 50) -> list[Job]:
        jobs: list[Job] = self.repo.list_jobs(status=status, kind=kind, limit=limit)
        return jobs

    def wait(self, job_id: int, timeout: float | None = None, poll: float = 0.25,
             on_progress: Callable[[Job], None] | None = None) -> Job:
        """Block until the job has finished (succeeded, failed or cancelled); the job."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.repo.get(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.finished:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise JobError(f"job {job_id} did not finish within {timeout:g} s "
                               f"(status {job.status}, {job.items_done}/{job.items_total} done)")
            time.sleep(poll)

    def sweep(self) -> list[tuple[int, int]]:
        """Send again the batches whose worker died while running them, and finish the
        batches left 'retrying' whose retry never came (see :meth:`retry_due_after`);
        the (job, batch) pairs sent or failed."""
        found = sweep_orphans(self.repo, self._send)
        if found:
            log.warning("jobs.orphans_requeued", batches=[f"{j}:{n}" for j, n in found])
        sent, failed = sweep_stale_retries(self.repo, self._send, due_after=self.retry_due_after,
                                           max_retries=self.settings.max_retries)
        if sent:
            log.warning("jobs.stale_retries_requeued", batches=[f"{j}:{n}" for j, n in sent])
        if failed:
            log.warning("jobs.stale_retries_failed", batches=[f"{j}:{n}" for j, n in failed])
        return [*found, *sent, *failed]

    @property
    def retry_due_after(self) -> float:
        """Seconds after a failed attempt by which its retry has started, if it ever will.

        Dramatiq's backoff is at most ``max_backoff_ms``; a delayed retry waits in
        a worker's memory, and if that worker dies Dramatiq gives it back after the
        heartbeat timeout; two sweep periods cover the sweep's own lateness. A
        batch still 'retrying' (and unclaimed) after that is finished by the sweep.
        """
        s = self.settings
        return (s.max_backoff_ms + s.heartbeat_timeout_ms) / 1000 + 2 * s.sweep_interval

    def _check_broker(self) -> None:
        if self.broker is None:
            raise ConfigurationError("this job engine has no broker: pass one to send messages")
        from .broker import ping

        ping(self.broker)

    def _send(self, job_id: int, numbers: list[int]) -> None:
        from dramatiq import Message

        if self.broker is None:  # a sweep by an engine made without one (the scheduler's)
            raise ConfigurationError("this job engine has no broker: pass one to send messages")
        try:
            for number in numbers:
                self.broker.enqueue(Message(
                    queue_name=self.settings.queue, actor_name=ACTOR_NAME,
                    args=(job_id, number), kwargs={}, options={},
                ))
        except Exception as exc:
            if type(exc).__module__.startswith(("redis", "dramatiq")) or isinstance(exc, OSError):
                raise BrokerUnavailableError(
                    f"could not send job {job_id}'s batches to Redis: {exc}") from exc
            raise

    # -- workers ------------------------------------------------------------

    def run_batch(self, job_id: int, number: int, worker: str | None = None) -> str:
        """Run one delivery of a batch's message; what happened ('succeeded', 'skipped')."""
        worker = worker or worker_name()
        with BatchRun.claim(self.repo, job_id, number, worker) as run:
            if run is None:
                log.info("batch.skipped", reason="another worker is running it")
                return "skipped"
            started = run.start()
            if started is None:
                log.info("batch.skipped", reason=run.skip_reason)
                return "skipped"
            structlog.contextvars.bind_contextvars(attempt=started.attempt, kind=started.kind)
            began = time.perf_counter()
            try:
                kind = get_job_kind(started.kind)
                with run.transaction() as conn:
                    ctx = BatchContext.of(started, store=self.store, connection=conn,
                                          worker=worker, log=log)
                    outcome = kind.run(ctx)
                    status = run.complete(outcome.items_done, outcome.details)
                    if status == "succeeded":
                        kind.on_job_succeeded(ctx)
            except BatchSuperseded as exc:
                log.warning("batch.superseded", detail=str(exc))
                return "skipped"
            except Exception as exc:
                self._attempt_failed(run, exc)
                raise BatchAttemptFailed.of(exc) from None
            except BaseException as exc:  # an interrupt (time limit, shutdown): no data in it
                self._attempt_failed(run, exc)
                raise
        log.info("batch.succeeded", items=outcome.items_done,
                 seconds=round(time.perf_counter() - began, 3), job_status=status)
        return "succeeded"

    @staticmethod
    def _attempt_failed(run: BatchRun, exc: BaseException) -> None:
        item = getattr(exc, "item", None)
        try:
            exc.evstore_attempt = run.started.attempt if run.started else None  # type: ignore[attr-defined]
        except AttributeError:
            pass
        log.warning("batch.attempt_failed", error=error_text(exc), item=item)
        try:
            run.attempt_failed(error_text(exc), item, traceback_summary(exc))
        except Exception as record_exc:  # the database may be what failed
            log.error("batch.error_not_recorded", error=error_text(record_exc))

    def run_batch_safely(self, job_id: int, number: int) -> str:
        """:meth:`run_batch` for an actor: any failure leaves as :class:`BatchAttemptFailed`."""
        try:
            return self.run_batch(job_id, number)
        except Exception as exc:
            raise BatchAttemptFailed.of(exc) from None
