"""The ``forget`` job kind: forgetting a data subject on the workers (issue 10).

The logic is core's (:mod:`evstore.core.privacy.forget_job`, which
``cleanup_gdpr_data`` also runs in-process): planning opens the audited
forget request and makes one batch per step (keys and tombstone; one per
personal-data declaration; one per archive run); each batch runs in its
transaction, idempotent, so a retried, requeued or re-delivered batch after a
SIGKILLed worker completes the job; the batch that completes it closes the
request, writes the audit entry and drops the subject id from the job row.
"""

from __future__ import annotations

from typing import Any

from evstore.core.errors import ArchiveError, ConfigurationError
from evstore.core.privacy import forget_job
from evstore.core.store.persistence import EventStore

from .engine import JobEngine
from .kinds import BatchContext, BatchFailure, BatchOutcome, JobKind, Plan, register_job_kind

KIND = forget_job.KIND


class ForgetJobKind(JobKind):
    name = KIND

    def plan(self, store: EventStore, params: dict[str, Any]) -> Plan:
        job_params, batches = forget_job.plan(store, params)
        return Plan(job_params, batches)

    def run(self, ctx: BatchContext) -> BatchOutcome:
        try:
            items, counts = forget_job.run_batch(ctx.store, ctx.connection, ctx.job_id,
                                                 ctx.job_params, ctx.params)
        except (ArchiveError, ConfigurationError) as exc:
            raise BatchFailure(str(exc), item=ctx.label or None) from exc
        ctx.log.info("forget.batch", step=ctx.params.get("step"), **counts)
        return BatchOutcome(items, dict(counts))

    def on_job_succeeded(self, ctx: BatchContext) -> None:
        forget_job.succeeded(ctx.store, ctx.connection, ctx.job_id, ctx.job_params)


register_job_kind(ForgetJobKind())


def start_forget_job(engine: JobEngine, subject: str, created_by: str | None = None) -> int:
    """Enqueue the forget of ``subject`` on the job engine; the job id."""
    job_id = int(engine.start(KIND, {"subject": subject, "requested_by": created_by or "evstore"},
                              created_by=created_by))
    with engine.store.db.connection() as conn:
        conn.execute(engine.store.db.sql("privacy", "request_job"),
                     {"request_id": engine.get(job_id).params["request_id"], "job_id": job_id})
    return job_id
