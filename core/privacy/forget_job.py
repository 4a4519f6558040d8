"""The ``forget`` job: planning, one batch, completion, and running it in-process.

The job kind itself is registered by the workers (workers/forget_jobs.py,
which delegates here); this module is the job's logic, in core, so that
``cleanup_gdpr_data`` (the spec's call, core only) can run the very same job
in its own process: the job and its batches are real rows of the job tables
(``evstore jobs show`` lists them; ``evstore jobs requeue`` hands a failed or
interrupted one to the workers), each batch run at most once under its claim
(core/jobs/batch_runs.py), its effects committed with its outcome.

Job parameters: ``subject`` (removed from the job row once the job succeeds:
the row then holds the subject's keyed ref only) and ``request_id`` (the
``forget_requests`` row, the audit). Batches: the steps of
:func:`.forget.plan_steps`.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

from ..errors import InvalidJobError, JobError
from ..jobs.batch_runs import BatchRun, mark_failed
from ..jobs.model import BatchPlan
from ..jobs.repository import JobRepository
from .forget import ForgetResult, add_counts, check_subject, finish, get_result, open_request, plan_steps
from .forget import run_step as _run_step

if TYPE_CHECKING:
    import psycopg

    from ..store.persistence import EventStore

KIND = "forget"


def _label(step: dict[str, Any]) -> str:
    if step["step"] == "events":
        return f"events {step['event_type']} v{step['version']}"
    if step["step"] == "archive":
        return f"archive run {step['run_id']}"
    return "keys, tombstone, blind index"


def plan(store: EventStore, params: dict[str, Any]) -> tuple[dict[str, Any], list[BatchPlan]]:
    """Validate and plan a forget: (job parameters, batches). InvalidJobError for bad input."""
    try:
        subject = check_subject(params.get("subject"))
    except ValueError as exc:
        raise InvalidJobError(str(exc)) from None
    try:
        from .holds import ensure_not_held  # the legal hold (issue 11)
    except ImportError:
        pass
    else:
        ensure_not_held(store, subject, "forget")
    by = str(params.get("requested_by") or "evstore")
    request_id = int(params.get("request_id") or open_request(store, subject, by))
    steps = plan_steps(store, subject)
    batches = [BatchPlan(step, int(step.get("segments", 1)), _label(step)) for step in steps]
    return {"subject": subject, "request_id": request_id, "requested_by": by}, batches


def run_batch(store: EventStore, conn: psycopg.Connection, job_id: int,
              job_params: dict[str, Any], params: dict[str, Any]) -> tuple[int, dict[str, int]]:
    """One batch in ``conn``'s transaction: (items done, counts)."""
    subject = job_params.get("subject")
    if not subject:
        return 0, {}  # the job finished and forgot its subject: nothing left to do
    from .holds import ensure_not_held, lock_subject

    lock_subject(store, conn, str(subject))  # a hold placed meanwhile waits for this batch
    ensure_not_held(store, str(subject), "forget")  # or stops it: LegalHoldError, nothing done
    counts = _run_step(store, conn, str(subject), {**params, "job_id": job_id})
    add_counts(store, conn, int(job_params["request_id"]), counts)
    return int(params.get("segments", 1)), counts


def succeeded(store: EventStore, conn: psycopg.Connection, job_id: int,
              job_params: dict[str, Any]) -> None:
    """The job's last batch: close the request, write the audit, drop the subject id from the job."""
    finish(store, conn, int(job_params["request_id"]), str(job_params.get("requested_by") or "evstore"))
    conn.execute(store.db.sql("privacy", "job_forget_subject"), {"job_id": job_id})


def run_here(store: EventStore, subject: str, requested_by: str = "evstore") -> ForgetResult:
    """Create a forget job and run all its batches in this process; the result.

    A batch that fails is marked failed (JobError): ``evstore jobs requeue``
    hands it to the workers, or :func:`resume_here` runs it here again.
    """
    params, batches = plan(store, {"subject": subject, "requested_by": requested_by})
    repo = JobRepository(store)
    job_id = repo.create(KIND, params, batches, requested_by)
    with store.db.connection() as conn:
        conn.execute(store.db.sql("privacy", "request_job"),
                     {"request_id": params["request_id"], "job_id": job_id})
    return resume_here(store, job_id)


def resume_here(store: EventStore, job_id: int) -> ForgetResult:
    """Run a forget job's batches not done yet (pending or failed) in this process; the result."""
    repo = JobRepository(store)
    job = repo.get(job_id)
    if job.kind != KIND:
        raise InvalidJobError(f"job {job_id} is a {job.kind} job, not a forget")
    repo.requeue(job_id, lambda _job, _numbers: None)  # nothing sent: run here
    worker = f"{socket.gethostname()}:{os.getpid()}:inline"
    for batch in repo.batches(job_id):
        if batch.status != "queued":
            continue
        with BatchRun.claim(repo, job_id, batch.number, worker) as run:
            if run is None or (started := run.start()) is None:
                continue
            try:
                with run.transaction() as conn:
                    items, counts = run_batch(store, conn, job_id, started.job_params, started.params)
                    if run.complete(items, counts) == "succeeded":
                        succeeded(store, conn, job_id, started.job_params)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
                mark_failed(repo, job_id, batch.number, started.attempt, error=error,
                            item=_label(started.params))
                raise JobError(f"forget job {job_id} failed at batch {batch.number} ({exc}); "
                               f"'evstore jobs requeue {job_id}' completes it") from exc
    return get_result(store, int(repo.get(job_id).params["request_id"]))
