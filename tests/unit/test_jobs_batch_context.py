"""A worker's BatchContext is the started batch plus the run's resources (no database)."""

from __future__ import annotations

from dataclasses import fields

from evstore.core.jobs.model import StartedBatch
from evstore.workers.kinds import BatchContext


def test_batch_context_of_copies_every_field_of_the_started_batch() -> None:
    started = StartedBatch(job_id=7, number=2, attempt=3, kind="replay", job_params={"a": 1},
                           params={"streams": ["s"]}, label="1 stream", items_total=5)
    ctx = BatchContext.of(started, store=None, connection=None,  # type: ignore[arg-type]
                          worker="host:1", log=None)  # type: ignore[arg-type]
    for f in fields(StartedBatch):
        assert getattr(ctx, f.name) == getattr(started, f.name), f.name
    assert (ctx.worker, ctx.store, ctx.connection, ctx.log) == ("host:1", None, None, None)


def test_batch_id_is_job_and_batch_number() -> None:
    started = StartedBatch(7, 2, 1, "replay", {}, {}, "", 0)
    assert started.batch_id == "7:2"
    ctx = BatchContext.of(started, store=None, connection=None,  # type: ignore[arg-type]
                          worker="w", log=None)  # type: ignore[arg-type]
    assert ctx.batch_id == "7:2"
