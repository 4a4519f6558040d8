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
archived). Workers find a kind by its name among the kinds registered in
their own process: evstore's built-in kinds (imported on first use from the
fixed table below) and those registered by the operator's modules
(EVSTORE_HANDLER_MODULES). A job row never names a module to import (see
:mod:`.registry`); an unknown kind fails the batch.
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


@dataclass(frozen=True)
class Plan:
    params: dict[str, Any]
    batches: list[BatchPlan]


@dataclass(frozen=True)
class BatchOutcome:
    items_done: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
# StartedBatch comes from evstore.core, which mypy does not follow (an editable-install mapping): Any.
class BatchContext(StartedBatch):  # type: ignore[misc]
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
    """A batch attempt failed on one item (an event id, an aggregate, a segment).

    The message is scrubbed before it is stored or logged (see :mod:`.scrub`)
    unless ``safe`` says it was composed from ids and scrubbed parts already;
    ``values`` (the data being handled) are scrubbed from the causes' text too.
    """

    def __init__(self, message: str, *, item: str | None = None, safe: bool = False,
                 values: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.item = item
        self.evstore_safe_message = safe
        self.evstore_values = values


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
    "forget": "evstore.workers.forget_jobs",
}


def get_job_kind(name: str) -> JobKind:
    """The kind registered as ``name`` (a built-in one is imported from evstore on first use).

    Nothing named by a job row is ever imported: an unknown name is an error.
    """
    if not isinstance(name, str):
        raise InvalidJobError(f"a job kind is a name (got {type(name).__name__})")
    builtin = BUILTIN_KINDS.get(name)
    if name not in _KINDS and builtin is not None:
        importlib.import_module(builtin)
    try:
        return _KINDS[name]
    except KeyError:
        known = ", ".join(sorted({*_KINDS, *BUILTIN_KINDS}))
        raise InvalidJobError(
            f"unknown job kind {name[:100]!r} (known here: {known}; other kinds are registered "
            "by the modules in EVSTORE_HANDLER_MODULES)") from None

