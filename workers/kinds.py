"""Kinds of job: what the engine asks of a replay, a snapshot build, an archive run.

A kind has a name and two methods:

- ``plan(store, params) -> Plan``: runs in the producer. Validates the
  parameters (raise InvalidJobError for bad input: nothing is created then),
  fixes what the job covers, and splits it into batches (``BatchPlan``: the
  batch's own parameters, how many items it holds, a label for people).
- ``run(ctx) -> BatchOutcome``: runs in a worker, inside the batch's
  PostgreSQL transaction (``ctx.connection``). Effects done through that
  connection commit with the batch's outcome, so a batch delivered twice
  never applies them twice. Effects elsewhere must be idempotent: key them on
  ``ctx.batch_id`` / item ids; ``ctx.attempt`` says which attempt this is.
  Raise ``BatchFailure(message, item=...)`` to fail the attempt naming the
  item at fault (any other exception fails it too).

Optionally ``on_job_succeeded(ctx)``: called in the transaction of the batch
whose success completes the job (e.g. an archive run deleting what it
archived). Workers find a kind by name; a kind not yet imported in a worker
is imported from the module recorded when the job was started.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import Any

import psycopg
from evstore.core.errors import InvalidJobError
from evstore.core.jobs.model import BatchPlan, StartedBatch
from evstore.core.store.persistence import EventStore
from structlog.typing import FilteringBoundLogger

KIND_MODULE_PARAM = "_kind_module"


@dataclass(frozen=True)
class Plan:
    params: dict[str, Any]
    batches: list[BatchPlan]


@dataclass(frozen=True)
class BatchOutcome:
    items_done: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchContext(StartedBatch):
    """Everything a kind's ``run`` needs about its batch: the started batch
    (:class:`~evstore.core.jobs.model.StartedBatch`: ids, attempt, parameters,
    ``batch_id``) and the run's store, connection, worker name and logger."""

    store: EventStore
    connection: psycopg.Connection
    worker: str
    log: FilteringBoundLogger

    @classmethod
    def of(
        cls, started: StartedBatch, *, store: EventStore, connection: psycopg.Connection,
        worker: str, log: FilteringBoundLogger,
    ) -> BatchContext:
        batch = {f.name: getattr(started, f.name) for f in fields(StartedBatch)}
        return cls(**batch, store=store, connection=connection, worker=worker, log=log)


class BatchFailure(Exception):
    """A batch attempt failed on one item (an event id, an aggregate, a segment)."""

    def __init__(self, message: str, *, item: str | None = None) -> None:
        super().__init__(message)
        self.item = item


class JobKind(ABC):
    name: str = ""

    @abstractmethod
    def plan(self, store: EventStore, params: dict[str, Any]) -> Plan:
        """Validate, fix the job's scope, split it into batches."""

    @abstractmethod
    def run(self, ctx: BatchContext) -> BatchOutcome:
        """Do one batch inside its transaction."""

    def on_job_succeeded(self, ctx: BatchContext) -> None:
        """Called in the transaction of the batch that completes the job."""
        return None


_KINDS: dict[str, JobKind] = {}


def register_job_kind(kind: JobKind) -> JobKind:
    if not kind.name:
        raise ValueError(f"{type(kind).__name__} has no name")
    existing = _KINDS.get(kind.name)
    if existing is not None and type(existing).__qualname__ != type(kind).__qualname__:
        raise ValueError(f"a job kind named {kind.name!r} is already registered "
                         f"({type(existing).__module__}.{type(existing).__qualname__})")
    _KINDS[kind.name] = kind
    return kind


# evstore's own kinds and the modules that register them, so a process that
# starts one (a producer, the scheduler) needs no import of its own.
BUILTIN_KINDS = {
    "replay": "evstore.workers.replay",
    "snapshot_build": "evstore.workers.snapshot_jobs",
    "archive": "evstore.workers.archive_jobs",
    "partitions": "evstore.workers.maintenance_jobs",
}


def get_job_kind(name: str, module: str | None = None) -> JobKind:
    """The registered kind; imports ``module`` first when the kind is not known yet."""
    module = module or BUILTIN_KINDS.get(name)
    if name not in _KINDS and module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise InvalidJobError(
                f"job kind {name!r} is defined in module {module!r}, which cannot be imported "
                f"here: {exc}"
            ) from exc
    try:
        return _KINDS[name]
    except KeyError:
        known = ", ".join(sorted(_KINDS)) or "none"
        raise InvalidJobError(f"unknown job kind {name!r} (known: {known})") from None

