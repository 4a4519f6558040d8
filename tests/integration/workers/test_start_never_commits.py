"""A batch whose every delivery fails before its start commits ends 'failed'.

BatchStartLost, or the database refusing the start, leaves the batch 'queued'
(its attempt never began). When Dramatiq gave up on its message, BatchFailures
marked only 'running' or 'retrying' batches failed: this one stayed 'queued'
with no message left, and its job never ended.
"""

from __future__ import annotations

from evstore.core.errors import JobError
from evstore.workers.replay import ReplayConfig

from .conftest import seed


def test_a_batch_that_never_starts_ends_failed_and_its_job_ends(service, jobs_store, start_workers) -> None:
    seed(jobs_store, 6, 2)
    schema = jobs_store.db.quoted_schema
    with jobs_store.connection() as conn:
        # The database refuses every start (a batch becoming 'running') of this job
        conn.execute(f"""
            CREATE FUNCTION {schema}.refuse_start() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'no start for batch %', NEW.number; END $$""")
        conn.execute(f"""
            CREATE TRIGGER refuse_start BEFORE UPDATE ON {schema}.job_batches FOR EACH ROW
            WHEN (NEW.status = 'running') EXECUTE FUNCTION {schema}.refuse_start()""")
    start_workers(processes=1, threads=2)
    engine = service.engine
    job_id = service.start(ReplayConfig(handler_names=["record"], batch_size=4))
    try:
        job = engine.wait(job_id, timeout=90)
    except JobError as exc:
        stuck = [(b.number, b.status, b.attempts) for b in engine.repo.batches(job_id)]
        raise AssertionError(f"{exc}; batches: {stuck}") from None
    batches = engine.repo.batches(job_id)
    assert job.status == "failed" and batches and {b.status for b in batches} == {"failed"}
    assert all("no start for batch" in (b.last_error or "") for b in batches), engine.detail(job_id)
    # Nothing ran: no batch was ever started
    assert all(b.attempts == 0 for b in batches)
