"""The ``snapshot_build`` job kind: a snapshot sweep whose batches are built by workers.

Planning (in the producer) runs the sweep of :mod:`evstore.core.snapshots.policy`:
the aggregates of one type past their strategy's threshold, cut into batches
of aggregate-id ranges. A batch re-checks each aggregate of its range and
snapshots those still due, writing through the batch's connection, so the
snapshots commit together with the batch's outcome (a batch delivered twice
writes nothing twice). The job names its aggregate class by ``module:Class``;
a worker builds it only if that class is configured there
(EVSTORE_AGGREGATE_CLASSES, or register_aggregate_class in a module of
EVSTORE_HANDLER_MODULES): a name from a job row is never imported otherwise.
"""

from __future__ import annotations

from typing import Any

from evstore.core.errors import ConfigurationError, InvalidJobError, SnapshotBuildError
from evstore.core.jobs.model import BatchPlan
from evstore.core.snapshots.aggregate import class_path, type_of
from evstore.core.snapshots.policy import (
    SnapshotBatch,
    SnapshotConfig,
    build_batch,
    plan_batches,
)
from evstore.core.store.persistence import EventStore

from .engine import JobEngine
from .kinds import BatchContext, BatchFailure, BatchOutcome, JobKind, Plan, register_job_kind
from .registry import aggregate_class as configured_class
from .registry import register_aggregate_class

KIND = "snapshot_build"


def _class_and_config(params: dict[str, Any]) -> tuple[type[Any], SnapshotConfig]:
    """The configured class the job names (never imported from the name: see registry.py)."""
    path = params.get("aggregate_class")
    if not path:
        raise InvalidJobError("a snapshot_build job needs 'aggregate_class' ('module:Class')")
    cls = configured_class(path)
    try:
        config = SnapshotConfig.from_dict(dict(params.get("config") or {}))
    except (ConfigurationError, ValueError) as exc:
        raise InvalidJobError(str(exc)) from exc
    if cls.__module__ == "__main__":
        raise InvalidJobError(
            f"aggregate class {path!r} is defined in __main__: workers cannot import it")
    return cls, config


class SnapshotBuildKind(JobKind):
    name = KIND

    def plan(self, store: EventStore, params: dict[str, Any]) -> Plan:
        cls, config = _class_and_config(params)
        try:
            aggregate_type = type_of(cls, params.get("aggregate_type"))
        except ConfigurationError as exc:
            raise InvalidJobError(str(exc)) from exc
        batch_size = int(params.get("batch_size") or 100)
        if batch_size < 1:
            raise InvalidJobError(f"batch_size must be >= 1 (got {batch_size})")
        batches = plan_batches(store, cls, config, batch_size, aggregate_type)
        planned = [
            BatchPlan({"first": b.first, "last": b.last, "count": b.count}, b.count,
                      f"{b.count} aggregates {b.first}..{b.last}")
            for b in batches
        ] or [BatchPlan({"first": None, "last": None, "count": 0}, 0, "nothing due")]
        return Plan({"aggregate_class": str(params["aggregate_class"]),
                     "aggregate_type": aggregate_type, "config": config.to_dict(),
                     "batch_size": batch_size}, planned)

    def run(self, ctx: BatchContext) -> BatchOutcome:
        if not ctx.params.get("count"):
            return BatchOutcome(0, {"built": 0, "skipped": 0})
        cls, config = _class_and_config(ctx.job_params)
        batch = SnapshotBatch(str(ctx.params["first"]), str(ctx.params["last"]),
                              int(ctx.params["count"]))
        try:
            report = build_batch(ctx.store, cls, config, batch,
                                 ctx.job_params.get("aggregate_type"), conn=ctx.connection)
        except SnapshotBuildError as exc:
            raise build_failure(exc) from exc
        return BatchOutcome(batch.count, {
            "built": report.built, "skipped": report.skipped,
            "original_bytes": report.original_bytes, "stored_bytes": report.stored_bytes,
        })


def build_failure(exc: SnapshotBuildError) -> BatchFailure:
    """A failed snapshot build as a batch failure naming the aggregate (also the
    archive job's snapshot guard batches, workers/archive_jobs.py)."""
    return BatchFailure(str(exc), item=f"aggregate {exc.aggregate_id}")


register_job_kind(SnapshotBuildKind())


def start_snapshot_build(
    engine: JobEngine, aggregate_class: type[Any] | str, config: SnapshotConfig | None = None,
    *, batch_size: int = 100, aggregate_type: str | None = None, created_by: str | None = None,
) -> int:
    """Plan a snapshot sweep and enqueue its batches on the job engine; the job id."""
    if isinstance(aggregate_class, str):
        path = aggregate_class
    else:  # a class given by the caller's code: allowed here (workers need it configured)
        path = class_path(register_aggregate_class(aggregate_class))
    params: dict[str, Any] = {"aggregate_class": path,
                              "config": (config or SnapshotConfig()).to_dict(),
                              "batch_size": batch_size}
    if aggregate_type:
        params["aggregate_type"] = aggregate_type
    return int(engine.start(KIND, params, created_by=created_by))
