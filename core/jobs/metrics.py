"""Job engine metrics in the Prometheus text format, read from the job tables.

Counted from PostgreSQL rather than inside worker processes, so the figures
are the same whichever process (or machine) serves the scrape, and survive
worker restarts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from ..store.persistence import EventStore


def render_job_metrics(store: EventStore, registry: CollectorRegistry | None = None) -> str:
    registry = registry or CollectorRegistry()
    jobs = Gauge("evstore_jobs", "Jobs by kind and status", ["kind", "status"], registry=registry)
    batches = Gauge("evstore_job_batches", "Job batches by kind and status", ["kind", "status"],
                    registry=registry)
    items = Gauge("evstore_job_items_done", "Items (events, aggregates, ...) done by succeeded "
                  "batches", ["kind"], registry=registry)
    errors = Gauge("evstore_job_failed_attempts", "Failed batch attempts recorded", ["kind"],
                   registry=registry)
    db = store.db
    with db.connection() as conn:
        for kind, status, n in conn.execute(db.sql("jobs", "job_counts")):
            jobs.labels(kind, status).set(n)
        done: dict[str, int] = {}
        for kind, status, n, items_done in conn.execute(db.sql("jobs", "batch_counts")):
            batches.labels(kind, status).set(n)
            if status == "succeeded":
                done[kind] = done.get(kind, 0) + int(items_done)
        for kind, n in conn.execute(db.sql("jobs", "error_counts")):
            errors.labels(kind).set(n)
    for kind, n in done.items():
        items.labels(kind).set(n)
    return generate_latest(registry).decode()
