"""The ``partitions`` job kind: partition upkeep, fired by the scheduler.

One batch that creates the current month's partition and ``months_ahead``
after it (``PostgreSQLEventStore.create_partitions_ahead``). Creating a
partition is idempotent, so a batch delivered twice does no harm.
"""

from __future__ import annotations

from typing import Any

from evstore.core.errors import InvalidJobError
from evstore.core.jobs.model import BatchPlan
from evstore.core.store.persistence import EventStore

from .kinds import BatchContext, BatchOutcome, JobKind, Plan, register_job_kind

KIND = "partitions"


class PartitionUpkeepKind(JobKind):
    name = KIND

    def plan(self, store: EventStore, params: dict[str, Any]) -> Plan:
        months = params.get("months_ahead", 3)
        if isinstance(months, bool) or not isinstance(months, int) or not 0 <= months <= 120:
            raise InvalidJobError(f"months_ahead must be an integer from 0 to 120 (got {months!r})")
        return Plan({"months_ahead": months},
                    [BatchPlan({"months_ahead": months}, months + 1, f"{months} months ahead")])

    def run(self, ctx: BatchContext) -> BatchOutcome:
        created = ctx.store.create_partitions_ahead(int(ctx.params["months_ahead"]))
        return BatchOutcome(int(ctx.params["months_ahead"]) + 1,
                            {"created": [m.isoformat() for m in created]})


register_job_kind(PartitionUpkeepKind())
