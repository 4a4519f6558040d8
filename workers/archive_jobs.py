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

A run with nothing to upload (say, only empty partitions to drop) gets one
``finalize`` batch.
"""

from __future__ import annotations

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
from evstore.core.archive.guard import registered_classes
from evstore.core.archive.runs import attach_job
from evstore.core.errors import (
    ArchiveError,
    ConfigurationError,
    InvalidJobError,
    JobNotFoundError,
)
from evstore.core.jobs.model import BatchPlan
from evstore.core.jobs.repository import JobRepository
from evstore.core.snapshots.aggregate import type_of
from evstore.core.store.persistence import EventStore

from .engine import JobEngine
from .kinds import BatchContext, BatchFailure, BatchOutcome, JobKind, Plan, register_job_kind
from .registry import aggregate_class
from .settings import load_job_settings

KIND = "archive"


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
        now = datetime.fromisoformat(params["now"]) if params.get("now") else None
        run, resumed = plan_run(store, policy, now=now)
        if resumed and run.job_id:
            _refuse_if_running(store, run.run_id, policy.name, run.job_id)
        todo = [s for s in list_segments(store, run.run_id) if s.status != "deleted"]
        batches = [
            BatchPlan({"run_id": run.run_id, "segment": s.number}, s.event_count,
                      f"segment {s.number}")
            for s in todo
        ] or [BatchPlan({"run_id": run.run_id, "segment": None}, 0, "finalize")]
        return Plan(
            {"policy": policy.name, "run_id": run.run_id, "resumed": resumed,
             "target_url": run.target_url, "strategy": run.strategy},
            batches,
        )

    def run(self, ctx: BatchContext) -> BatchOutcome:
        run_id = str(ctx.params["run_id"])
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


def _snapshot_classes() -> list[type[Any]]:
    """The snapshot guard's classes here: registered ones and EVSTORE_AGGREGATE_CLASSES."""
    classes = {type_of(c): c for c in registered_classes()}
    for path in load_job_settings().aggregate_class_paths:
        cls = aggregate_class(path)
        classes[type_of(cls)] = cls
    return list(classes.values())


register_job_kind(ArchiveJobKind())


def start_archive_job(engine: JobEngine, policy: str | ArchivalPolicy, created_by: str | None = None,
                      now: datetime | None = None) -> int:
    """Enqueue an archive run of ``policy`` on the job engine; the job id."""
    params: dict[str, Any] = (
        {"policy_spec": policy.to_dict()} if isinstance(policy, ArchivalPolicy)
        else {"policy": policy}
    )
    if now is not None:
        params["now"] = now.isoformat()
    job_id = int(engine.start(KIND, params, created_by=created_by))
    attach_job(engine.store, str(engine.get(job_id).params["run_id"]), str(job_id))
    return job_id
