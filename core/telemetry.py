"""Process-local Prometheus instruments of the metrics contract (docs/operations.md).

These live in the process that does the work (an append, a read, a query, an
archive run) and are served by that process's ``/metrics``
(:mod:`evstore.http`). Figures that are the same whatever process answers
(jobs, consumer lag, partitions, the horizon) are read from PostgreSQL at
scrape time instead (``evstore.http.collector``).

Every label has a small fixed set of values (documented beside each
instrument): never a stream id, an event type, a user or a job id.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

# Seconds: 0.5 ms to 10 s (an append is about a millisecond; a slow disk shows in the tail).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds: 10 ms to an hour (archive runs, restores, forget jobs, queries over the history).
LONG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

# outcome: ok | conflict | error
APPEND_SECONDS = Histogram(
    "evstore_append_seconds", "Time of one append_events call (its whole transaction)",
    ["outcome"], buckets=LATENCY_BUCKETS)
APPENDED_EVENTS = Counter("evstore_appended_events", "Events appended by this process")
APPEND_CONFLICTS = Counter(
    "evstore_append_conflicts", "Appends refused by optimistic concurrency (ConcurrencyError)")
# operation: read_all | read_stream ; source: primary | replica
READ_SECONDS = Histogram(
    "evstore_read_seconds", "Time of one read call", ["operation", "source"], buckets=LATENCY_BUCKETS)
READ_EVENTS = Counter("evstore_read_events", "Events returned by reads", ["operation", "source"])
# Seconds the replica that served the last read_all page was behind the primary.
# (A Gauge is made by the HTTP collector from the replica at scrape time.)
# kind: the query service's query kinds (a fixed set: see docs/query.md)
QUERY_SECONDS = Histogram(
    "evstore_query_seconds", "Time of one EventQueryService query", ["kind"], buckets=LONG_BUCKETS)
# result: hit | miss
QUERY_CACHE = Counter("evstore_query_cache_lookups", "Query cache lookups", ["result"])
# operation: archive | restore | forget | verify_archive ; outcome: ok | error
OPERATION_SECONDS = Histogram(
    "evstore_operation_seconds", "Time of one archive, restore or forget step",
    ["operation", "outcome"], buckets=LONG_BUCKETS)
OPERATION_BYTES = Counter(
    "evstore_operation_bytes", "Bytes written or read by archive, restore and forget", ["operation"])

OPERATIONS = ("archive", "restore", "forget", "verify_archive")


@contextmanager
def timed_operation(operation: str) -> Iterator[None]:
    """Time an archive/restore/forget step into ``evstore_operation_seconds``."""
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r} (one of {', '.join(OPERATIONS)})")
    start = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        OPERATION_SECONDS.labels(operation, outcome).observe(time.perf_counter() - start)


def record_append(seconds: float, events: int, outcome: str) -> None:
    APPEND_SECONDS.labels(outcome).observe(seconds)
    if outcome == "ok":
        APPENDED_EVENTS.inc(events)
    elif outcome == "conflict":
        APPEND_CONFLICTS.inc()


def record_read(operation: str, seconds: float, events: int, source: str = "primary") -> None:
    READ_SECONDS.labels(operation, source).observe(seconds)
    READ_EVENTS.labels(operation, source).inc(events)
