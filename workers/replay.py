"""Replay: deliver a range of stored events to named handlers, in batches, on the workers.

Ordering (see docs/jobs.md): within a batch, events are delivered in the
global order; a batch holds every selected event of each of its streams, so
each stream's events arrive in stream order whatever the parallelism. Batches
run in parallel; there is no order between events of different batches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evstore.core.archive.tiers import archived_spans, iter_archived_of, merge_spans, merge_tiers
from evstore.core.errors import InvalidJobError
from evstore.core.jobs.model import BatchPlan, Job
from evstore.core.jobs.replay import (
    ReplaySelection,
    StreamSpan,
    pack_streams,
    plan_streams,
)
from evstore.core.store import hooks
from evstore.core.store.persistence import EventStore

from .engine import JobEngine
from .handlers import ALL_TYPES, HandlerContext, RegisteredHandler, register_event_handler, resolve_handlers
from .kinds import BatchContext, BatchFailure, BatchOutcome, JobKind, Plan, register_job_kind
from .registry import load_configured
from .replica_events import BatchEvents, plan_lsn
from .scrub import leaf_values, safe_error

if TYPE_CHECKING:
    from dramatiq import Broker

KIND = "replay"


@dataclass(frozen=True)
class ReplayConfig:
    """What to replay and how. Positions are inclusive; timestamps are [from, to)."""

    from_timestamp: datetime | None = None
    to_timestamp: datetime | None = None
    from_position: int | None = None
    to_position: int | None = None
    aggregate_ids: Sequence[str] | None = None
    aggregate_types: Sequence[str] | None = None
    event_types: Sequence[str] | None = None
    batch_size: int | None = None  # events per batch; default EVENT_STORE_BATCH_SIZE
    handler_names: Sequence[str] | None = None  # default: every registered handler
    stop_on_error: bool = False  # a failed batch cancels the batches not started yet
    # Archived months too (issue 13): archived and live events in one global order, each once.
    include_archived: bool = False
    # Why (issue 11): logged with each batch's access, and consent withdrawn for this
    # purpose redacts the subject's declared fields. Default: the caller's access context.
    purpose: str | None = None

    def selection(self) -> ReplaySelection:
        def names(value: Sequence[str] | None) -> tuple[str, ...] | None:
            if value is None:
                return None
            if isinstance(value, str):
                raise InvalidJobError(f"expected a list of names, got the string {value!r}")
            return tuple(value)

        return ReplaySelection(
            from_position=self.from_position, to_position=self.to_position,
            from_time=self.from_timestamp, to_time=self.to_timestamp,
            aggregate_ids=names(self.aggregate_ids), aggregate_types=names(self.aggregate_types),
            event_types=names(self.event_types),
        )


@dataclass(frozen=True)
class ReplayError:
    batch: int
    event_id: str | None
    error: str
    attempts: int


@dataclass(frozen=True)
class ReplayResult:
    job_id: int
    status: str
    total_events: int
    successful_events: int
    failed_events: int
    duration: float  # seconds from the first batch's start to the job's end (or now)
    handler_counts: dict[str, int] = field(default_factory=dict)
    errors: list[ReplayError] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.successful_events / self.duration if self.duration > 0 else 0.0


class ReplayJob(int):
    """A replay's job id (an int), whose ReplayResult fields wait for the job to end.

    ``replay_events(config).successful_events`` (the spec's shape) waits for the
    replay and reads its result; ``int(job)`` and the job id uses are unchanged.
    """

    service: EventReplayService

    def __new__(cls, job_id: int, service: EventReplayService) -> ReplayJob:
        job = super().__new__(cls, job_id)
        job.service = service
        return job

    def wait(self, timeout: float | None = None) -> ReplayResult:
        return self.service.wait(int(self), timeout=timeout)

    def __getattr__(self, name: str) -> Any:
        if name in ReplayResult.__dataclass_fields__ or name == "events_per_second":
            return getattr(self.wait(), name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class ReplayJobKind(JobKind):
    name = KIND

    def plan(self, store: EventStore, params: dict[str, Any]) -> Plan:
        handlers = resolve_handlers(params.get("handlers"))
        selection = ReplaySelection.from_params(params)
        if selection.event_types is not None:
            store.check_event_types(list(selection.event_types))
        selection = _narrow_to_handlers(selection, handlers)
        batch_size = params.get("batch_size")
        batch_size = store.settings.batch_size if batch_size is None else batch_size
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidJobError(f"batch_size must be >= 1 (got {batch_size!r})")
        snapshot, spans = plan_streams(store, selection)
        if params.get("include_archived"):  # the archived tier too (core/archive/tiers.py)
            spans = merge_spans(spans, archived_spans(store, selection), StreamSpan)
        if not spans:
            raise InvalidJobError(f"empty range: no stored event matches ({selection.describe()})")
        batches = []
        for group in pack_streams(spans, batch_size):
            lo = min(s.first_position for s in group)
            hi = max(s.last_position for s in group)
            events = sum(s.events for s in group)
            label = f"{len(group)} stream{'s' if len(group) > 1 else ''}, positions {lo}-{hi}"
            batches.append(BatchPlan({"streams": [s.stream_id for s in group]}, events, label))
        return Plan({
            **selection.to_params(), "snapshot": snapshot, "batch_size": batch_size,
            "handlers": [h.name for h in handlers],
            "stop_on_error": bool(params.get("stop_on_error")),
            "include_archived": bool(params.get("include_archived")),
            "accessor": params.get("accessor"), "purpose": params.get("purpose"),
            "wal_lsn": plan_lsn(store),  # batches read on the replica once it is there
        }, batches)

    def run(self, ctx: BatchContext) -> BatchOutcome:
        p = ctx.job_params
        handlers = resolve_handlers(p["handlers"])
        contexts = {h.name: HandlerContext(ctx.job_id, ctx.number, ctx.attempt, h.name,
                                           ctx.connection, ctx.store) for h in handlers}
        counts: Counter[str] = Counter()
        done = 0
        source = BatchEvents(ctx.store, ctx.connection, ReplaySelection.from_params(p), p["snapshot"],
                             ctx.params["streams"], p.get("wal_lsn"), ctx.attempt)  # replica or primary
        events: Any = iter(source)
        if p.get("include_archived"):
            events = merge_tiers(events, iter_archived_of(
                ctx.store, ReplaySelection.from_params(p), ctx.params["streams"]))
        with hooks.access_context(accessor=p.get("accessor"), purpose=p.get("purpose")):
            # one access-log entry per batch attempt, written when its events end (issue 11)
            events = hooks.observe_iter(ctx.store, "replay", events, job_id=ctx.job_id,
                                        batch=ctx.number, attempt=ctx.attempt)
        try:
            for event in events:
                for handler in handlers:
                    if not handler.accepts(event.event_type):
                        continue
                    try:
                        handler(event, contexts[handler.name])
                    except Exception as exc:
                        # Ids as they are; the handler's error without the event's values.
                        values = tuple(leaf_values(event.event_data, event.metadata.to_dict()))
                        raise BatchFailure(
                            f"handler {handler.name!r} failed on event {event.event_id} "
                            f"({event.event_type}, stream {event.stream_id} #{event.stream_position}): "
                            f"{safe_error(exc, values)}",
                            item=str(event.event_id), safe=True, values=values,
                        ) from exc
                    counts[handler.name] += 1
                done += 1
        finally:
            # Closed here, in the batch's transaction, when a handler fails: the server-side
            # cursor is closed now, not whenever the exception's frames are collected (then
            # on a connection serving someone else's transaction).
            close = getattr(events, "close", None)
            if close is not None:
                close()
        return BatchOutcome(done, {"handlers": dict(counts), "source": source.source})


def _narrow_to_handlers(selection: ReplaySelection, handlers: list[RegisteredHandler]) -> ReplaySelection:
    """Read only the event types some selected handler handles."""
    if any(ALL_TYPES in h.event_types for h in handlers):
        return selection
    handled = set().union(*(h.event_types for h in handlers))
    wanted = handled if selection.event_types is None else handled & set(selection.event_types)
    if not wanted:
        raise InvalidJobError(
            f"none of the handlers ({', '.join(h.name for h in handlers)}) handles the selected "
            f"event types ({', '.join(selection.event_types or ())})"
        )
    return replace(selection, event_types=tuple(sorted(wanted)))


register_job_kind(ReplayJobKind())


class EventReplayService:
    """The spec's replay service: start replays on the workers, follow them, read their results."""

    def __init__(
        self, store: EventStore, broker: Broker | None = None, engine: JobEngine | None = None,
    ) -> None:
        self.store = store
        if broker is None and engine is None and store.settings.redis_url:
            # The spec's EventReplayService(store): the broker of REDIS_URL (connected on first use).
            from .broker import make_broker

            broker = make_broker(store.settings.redis_url, check=False)
        self.engine = engine or JobEngine(store, broker)

    register_event_handler = staticmethod(register_event_handler)

    def start(self, config: ReplayConfig, created_by: str | None = None) -> int:
        """Plan and enqueue the replay; its job id (returns at once)."""
        if isinstance(config.handler_names, str):
            raise InvalidJobError(
                f"handler_names must be a list of names, got the string {config.handler_names!r}")
        selection = config.selection()
        params: dict[str, Any] = {
            **selection.to_params(), "batch_size": config.batch_size,
            "handlers": list(config.handler_names) if config.handler_names is not None else None,
            "stop_on_error": config.stop_on_error, "include_archived": config.include_archived,
            "accessor": hooks.current_access().accessor or created_by,
            "purpose": config.purpose or hooks.current_access().purpose,
        }
        load_configured()  # this process's EVSTORE_HANDLER_MODULES: its registry
        handlers = resolve_handlers(params["handlers"])
        local = [h.name for h in handlers if h.module == "__main__"]
        if local:
            raise InvalidJobError(
                f"handler(s) {', '.join(local)} are defined in __main__, which worker processes "
                "cannot import: move them to a module and name it in EVSTORE_HANDLER_MODULES"
            )
        return self.engine.start(KIND, params, created_by=created_by)

    def replay_events(self, config: ReplayConfig, *, wait: bool = False, timeout: float | None = None,
                      on_progress: Callable[[Job], None] | None = None) -> int | ReplayResult:
        """Start a replay: its job id at once, or (``wait=True``) its result when it ends."""
        job_id = self.start(config)
        if not wait:
            return ReplayJob(job_id, self)
        return self.wait(job_id, timeout=timeout, on_progress=on_progress)

    def wait(self, job_id: int, timeout: float | None = None,
             on_progress: Callable[[Job], None] | None = None) -> ReplayResult:
        self.engine.wait(job_id, timeout=timeout, on_progress=on_progress)
        return self.result(job_id)

    def result(self, job_id: int) -> ReplayResult:
        """The replay's result so far (final once the job has finished)."""
        detail = self.engine.detail(job_id)
        job = detail.job
        if job.kind != KIND:
            raise InvalidJobError(f"job {job_id} is a {job.kind} job, not a replay")
        counts: Counter[str] = Counter()
        errors = []
        for batch in detail.batches:
            if batch.status == "succeeded":
                counts.update(batch.details.get("handlers", {}))
            elif batch.last_error:
                errors.append(ReplayError(batch.number, batch.error_item, batch.last_error,
                                          batch.attempts))
        return ReplayResult(
            job_id=job_id, status=job.status, total_events=job.items_total,
            successful_events=job.items_done, failed_events=job.items_failed,
            duration=job.elapsed.total_seconds(), handler_counts=dict(counts), errors=errors,
        )
