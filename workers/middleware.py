"""Dramatiq middleware of the job engine: log context, exhausted retries, the orphan sweep."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from dramatiq.middleware import Middleware

from .engine import ACTOR_NAME, JobEngine, error_text, traceback_summary

if TYPE_CHECKING:
    from dramatiq import Broker, MessageProxy, Worker

log = structlog.get_logger("evstore.jobs")


def _is_batch(message: MessageProxy) -> bool:
    return bool(message.actor_name == ACTOR_NAME and len(message.args) == 2)


class JobLogContext(Middleware):
    """Binds job_id and batch (the engine adds attempt) to every log line of a batch.

    Put it first: its ``after_*`` hooks then run last and clear the context.
    """

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        structlog.contextvars.clear_contextvars()
        if _is_batch(message):
            job_id, number = message.args
            structlog.contextvars.bind_contextvars(
                job_id=job_id, batch=number, message_id=message.message_id,
                delivery=message.options.get("retries", 0) + 1,
            )

    def after_process_message(self, broker: Broker, message: MessageProxy, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        structlog.contextvars.clear_contextvars()

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        structlog.contextvars.clear_contextvars()


class BatchFailures(Middleware):
    """When Dramatiq gives up on a batch's message, the batch row becomes 'failed'.

    Must sit *before* Retries in the middleware list: ``after_process_message``
    hooks run in reverse order, so this one runs after Retries has decided
    (``message.failed``). Nothing relies on Dramatiq's dead-letter set.

    ``mark_failed`` takes a pooled connection and a transaction of its own; the
    failed run's connection was closed, not pooled, so nothing the failed
    attempt left behind can abort that transaction (this once showed as
    ``batch.failure_not_recorded: InFailedSqlTransaction``). Should recording
    fail anyway (the database unreachable), the batch stays 'retrying' and the
    sweep (:class:`OrphanSweeper`) marks it 'failed' once its retry is overdue.
    """

    def __init__(self, engine_factory: Callable[[], JobEngine]) -> None:
        self.engine_factory = engine_factory

    def after_process_message(self, broker: Broker, message: MessageProxy, *, result: Any = None,
                              exception: BaseException | None = None) -> None:
        if exception is None or not _is_batch(message) or not message.failed:
            return
        from evstore.core.jobs.batch_runs import mark_failed

        job_id, number = message.args
        try:
            engine = self.engine_factory()
            marked = mark_failed(
                engine.repo, job_id, number, getattr(exception, "evstore_attempt", None),
                error=error_text(exception), item=getattr(exception, "item", None),
                traceback=traceback_summary(exception),
            )
        except Exception as exc:
            log.error("batch.failure_not_recorded", error=error_text(exc))
            return
        if marked:
            log.error("batch.failed", error=error_text(exception),
                      item=getattr(exception, "item", None))


class OrphanSweeper(Middleware):
    """A thread in each worker process that requeues batches whose worker died mid-run,
    and finishes batches left 'retrying' whose retry never came (``JobEngine.sweep``)."""

    def __init__(self, engine_factory: Callable[[], JobEngine], interval: float) -> None:
        self.engine_factory = engine_factory
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        if self.interval <= 0:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="evstore-orphan-sweeper", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.engine_factory().sweep()
            except Exception as exc:
                log.warning("jobs.sweep_failed", error=error_text(exc))
