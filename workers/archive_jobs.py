"""The ``archive`` job kind: an archive run whose segments are uploaded by workers in parallel.

Planning (in the producer) plans the run in PostgreSQL — or picks up the
policy's unfinished run — and makes one batch per segment still to do. A
batch exports, uploads and verifies its segment
(:func:`evstore.core.archive.export_segment`, idempotent: a segment already
verified is only re-checked). The batch whose success completes the job
finalizes the run: every segment is re-checked on the target, the run
manifest is published, and only then are events deleted or partitions
dropped. A failed batch leaves every event in place; ``evstore jobs requeue``
completes the job once the cause is fixed.

A run that deletes what it archived also gets snapshot guard batches, after
its segment batches: the aggregates with events both in the run and after it,
of the types with a snapshot class here (registered_classes(),
EVSTORE_AGGREGATE_CLASSES), each with its last archived position, cut into
chunks of EVSTORE_ARCHIVE_GUARD_BATCH_SIZE (or the job's ``guard_batch_size``)
aggregates of one type. A guard batch snapshots those of its chunk without a
snapshot at or after that position (:func:`guard_aggregates`: idempotent, each
snapshot committed on its own), with the class of its type in the worker's own
registry: a batch names an aggregate type, never code, and fails if the worker
has no class for it. The guard needs every archived event still in PostgreSQL,
not the export, so its batches may run while segments upload; the job (and so
the finalize, which deletes) succeeds only once every guard batch did. The
finalize then runs the guard inline once more as the final check, building
only what planning could not know of.

A run with nothing to upload or guard (say, only empty partitions to drop)
gets one ``finalize`` batch.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from evstore.core.archive import (
    ArchivalPolicy,
    export_segment,
    finalize_run,
    get_policy,
    list_segments,
    plan_run,
)
from evstore.core.archive.guard import (
    GuardReport,
    guard_aggregates,
    plan_guard,
    registered_classes,
)
from evstore.core.archive.runs import attach_job
from evstore.core.errors import (
    ArchiveError,
    ConfigurationError,
    InvalidJobError,
    JobNotFoundError,
    SnapshotBuildError,
)
from evstore.core.jobs.model import BatchPlan, JobDetail
from evstore.core.jobs.repository import JobRepository
from evstore.core.snapshots.aggregate import type_of
from evstore.core.store.persistence import EventStore

from .engine import JobEngine
from .kinds import BatchContext, BatchFailure, BatchOutcome, JobKind, Plan, register_job_kind
from .registry import aggregate_class
from .settings import load_job_settings
from .snapshot_jobs import build_failure

KIND = "archive"
GUARD_BATCH_SIZE_ENV = "EVSTORE_ARCHIVE_GUARD_BATCH_SIZE"
DEFAULT_GUARD_BATCH_SIZE = 500


def _guard_batch_size(params: dict[str, Any]) -> int:
    """Aggregates per guard batch: the job's ``guard_batch_size``, else the setting."""
    raw = params.get("guard_batch_size") or os.environ.get(GUARD_BATCH_SIZE_ENV) \
        or DEFAULT_GUARD_BATCH_SIZE
    try:
        size = int(raw)
    except (TypeError, ValueError):
        size = 0
    if size < 1 or isinstance(raw, bool):
        raise InvalidJobError(f"the snapshot guard's batch size ({GUARD_BATCH_SIZE_ENV} or "
                              f"guard_batch_size) must be an integer >= 1 (got {raw!r})")
    return size


def _policy(params: dict[str, Any]) -> ArchivalPolicy:
    try:
        if isinstance(params.get("policy_spec"), dict):
            return ArchivalPolicy.from_dict(params["policy_spec"])
        if params.get("policy"):
            return get_policy(str(params["policy"]))
    except ConfigurationError as exc:
        raise InvalidJobError(str(exc)) from exc
    raise InvalidJobError("an archive job needs 'policy' (a policy name) or 'policy_spec'")


def _refuse_if_running(store: EventStore, run_id: str, policy: str, job_id: str) -> None:
    """One job per run at a time: a second one would upload the same segments again."""
    try:
        job = JobRepository(store).get(int(job_id))
    except (JobNotFoundError, ValueError):
        return
    if not job.finished:
        raise InvalidJobError(
            f"archive run {run_id} of policy {policy!r} is still being archived by job "
            f"{job.job_id} ({job.status}); wait for it, or cancel it first"
        )


class ArchiveJobKind(JobKind):
    name = KIND

    def plan(self, store: EventStore, params: dict[str, Any]) -> Plan:
        policy = _policy(params)
        size = _guard_batch_size(params)
        now = datetime.fromisoformat(params["now"]) if params.get("now") else None
        run, resumed = plan_run(store, policy, now=now)
        if resumed and run.job_id:
            _refuse_if_running(store, run.run_id, policy.name, run.job_id)
        todo = [s for s in list_segments(store, run.run_id) if s.status != "deleted"]
        batches = [
            BatchPlan({"run_id": run.run_id, "segment": s.number}, s.event_count,
                      f"segment {s.number}")
            for s in todo
        ]
        guard: dict[str, Any] = {}
        if policy.delete_after_archive:
            types = sorted(_classes_by_type(planning=True))
            chunks = plan_guard(store, run.run_id, types, size)
            batches += [
                BatchPlan({"run_id": run.run_id, "guard": {
                    "type": c.aggregate_type, "aggregates": [list(a) for a in c.aggregates]}},
                    len(c.aggregates), c.label)
                for c in chunks
            ]
            guard = {"types": types, "affected": sum(len(c.aggregates) for c in chunks),
                     "batches": len(chunks), "batch_size": size}
        batches = batches or [BatchPlan({"run_id": run.run_id, "segment": None}, 0, "finalize")]
        return Plan(
            {"policy": policy.name, "run_id": run.run_id, "resumed": resumed,
             "target_url": run.target_url, "strategy": run.strategy, "guard": guard},
            batches,
        )

    def run(self, ctx: BatchContext) -> BatchOutcome:
        run_id = str(ctx.params["run_id"])
        if isinstance(ctx.params.get("guard"), dict):
            return _run_guard(ctx, ctx.params["guard"])
        number = ctx.params.get("segment")
        try:
            if number is None:
                run = finalize_run(ctx.store, run_id, snapshot_classes=_snapshot_classes())
                return BatchOutcome(0, {"deleted_events": run.deleted_events})
            result = export_segment(ctx.store, run_id, int(number))
        except ArchiveError as exc:
            raise BatchFailure(str(exc), item=f"segment {number}") from exc
        return BatchOutcome(result.events, {
            "url": result.data_url, "raw_bytes": result.raw_bytes,
            "stored_bytes": result.stored_bytes, "skipped": result.skipped,
        })

    def on_job_succeeded(self, ctx: BatchContext) -> None:
        # Raising here fails this batch's attempt, so the job is retried or
        # requeued; finalize_run is safe to call again.
        finalize_run(ctx.store, str(ctx.job_params["run_id"]),
                     snapshot_classes=_snapshot_classes())


def _run_guard(ctx: BatchContext, guard: dict[str, Any]) -> BatchOutcome:
    """One snapshot guard batch: its chunk's aggregates, with this worker's class."""
    atype = str(guard.get("type") or "")
    cls = _classes_by_type().get(atype)
    if cls is None:
        raise BatchFailure(
            f"no snapshot class for aggregate type {atype[:100]!r} on this worker (configure it "
            "in EVSTORE_AGGREGATE_CLASSES or register_aggregate_class, as on the producer); "
            "nothing was deleted", item=f"aggregate type {atype[:100]}")
    aggregates = [(str(a), int(p)) for a, p in guard.get("aggregates") or []]
    try:
        report = guard_aggregates(ctx.store, cls, atype, aggregates)
    except SnapshotBuildError as exc:
        raise build_failure(exc) from exc
    return BatchOutcome(report.affected, {"guard": report.as_dict()})


def _classes_by_type(planning: bool = False) -> dict[str, type[Any]]:
    """The snapshot guard's classes here, by aggregate type: registered ones and
    EVSTORE_AGGREGATE_CLASSES. When planning, a configured class the producer cannot
    import is left out (finalize's final check on the worker covers its type)."""
    classes = {type_of(c): c for c in registered_classes()}
    for path in load_job_settings().aggregate_class_paths:
        try:
            cls = aggregate_class(path)
        except InvalidJobError:
            if planning:
                continue
            raise
        try:
            classes[type_of(cls)] = cls
        except ConfigurationError:  # no aggregate_type: not guarded
            continue
    return classes


def _snapshot_classes() -> list[type[Any]]:
    return list(_classes_by_type().values())


def guard_report(detail: JobDetail) -> GuardReport | None:
    """The snapshot guard of an archive job so far: the sum of its guard batches'
    results (those not succeeded yet count nothing); None if it planned none."""
    planned = [b for b in detail.batches if isinstance(b.params.get("guard"), dict)]
    if not planned:
        return None
    total = GuardReport(0, 0, 0)
    for batch in planned:
        done = (batch.details or {}).get("guard") if batch.status == "succeeded" else None
        if isinstance(done, dict):
            total += GuardReport(int(done["affected"]), int(done["built"]), int(done["already"]))
    return total


register_job_kind(ArchiveJobKind())


def start_archive_job(engine: JobEngine, policy: str | ArchivalPolicy, created_by: str | None = None,
                      now: datetime | None = None, guard_batch_size: int | None = None) -> int:
    """Enqueue an archive run of ``policy`` on the job engine; the job id."""
    params: dict[str, Any] = (
        {"policy_spec": policy.to_dict()} if isinstance(policy, ArchivalPolicy)
        else {"policy": policy}
    )
    if now is not None:
        params["now"] = now.isoformat()
    if guard_batch_size is not None:
        params["guard_batch_size"] = guard_batch_size
    job_id = int(engine.start(KIND, params, created_by=created_by))
    attach_job(engine.store, str(engine.get(job_id).params["run_id"]), str(job_id))
    return job_id
