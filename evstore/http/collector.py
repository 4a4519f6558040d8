"""Metrics read from PostgreSQL at scrape time (the metrics contract: docs/operations.md).

The same figures whichever process answers the scrape: the store's size and
month partitions, the global-order horizon, consumer-group lag, jobs and
batches per kind, the queue depth the worker autoscaler follows, and the
lag of the read replica. Process-local instruments (append latency, reads,
queries, archive steps) are in :mod:`evstore.core.telemetry`.

Labels are bounded: job kinds and statuses are fixed sets, consumer
checkpoints and groups are named by operators (a handful), never per stream,
event type, user or job id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

log = structlog.get_logger("evstore.http")

POOL_TIMEOUT = 3.0


class StoreCollector(Collector):
    """Yields the database-derived metrics; ``evstore_scrape_ok`` 0 when the database failed."""

    def __init__(self, database_url: str | None, settings: Any, *, read_url: str | None = None,
                 worker_capacity: int | None = None, local_pools: dict[str, Any] | None = None) -> None:
        self.database_url = database_url
        self.settings = settings
        self.read_url = read_url
        self.worker_capacity = worker_capacity
        self.local_pools = dict(local_pools or {})
        self._store: Any = None
        self._lock = threading.Lock()

    def _open_store(self) -> Any:
        if self._store is None:
            from psycopg_pool import ConnectionPool

            from evstore.core.db import configure
            from evstore.core.store.postgres import PostgreSQLEventStore

            assert self.database_url is not None  # collect() opens the store only with a URL
            pool = ConnectionPool(
                self.database_url, min_size=1, max_size=2, configure=configure, timeout=POOL_TIMEOUT,
                kwargs={"autocommit": True, "connect_timeout": 3,
                        "options": "-c statement_timeout=10000"},
                open=False, name="evstore-metrics")
            pool.open(wait=True, timeout=POOL_TIMEOUT)
            self._store = PostgreSQLEventStore(pool=pool, settings=self.settings)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.pool.close()
            self._store = None

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        ok = GaugeMetricFamily("evstore_scrape_ok", "1 when the database answered this scrape")
        metrics: list[Metric] = []
        with self._lock:
            try:
                if not self.database_url:
                    raise RuntimeError("no DATABASE_URL configured")
                store = self._open_store()
                metrics.extend(self._store_metrics(store))
                metrics.extend(self._job_metrics(store))
                metrics.extend(self._consumer_metrics(store))
                metrics.extend(self._archive_metrics(store))
                if self.read_url:
                    metrics.extend(self._replica_metrics(store))
                ok.add_metric([], 1)
            except Exception as exc:
                from evstore.core.redaction import redact

                log.warning("metrics.scrape_failed", error=redact(str(exc).splitlines()[0] if str(exc)
                                                                 else type(exc).__name__))
                self.close()
                ok.add_metric([], 0)
        yield from metrics
        yield from self._local_metrics()
        yield ok
        took = GaugeMetricFamily("evstore_scrape_seconds", "Time spent reading the database metrics")
        took.add_metric([], time.perf_counter() - started)
        yield took

    # -- the store ---------------------------------------------------------------

    def _store_metrics(self, store: Any) -> Iterator[Metric]:
        m = store.metrics(exact=False)
        yield _gauge("evstore_events", "Events stored (catalog estimate)", m.events)
        yield _gauge("evstore_streams", "Streams (catalog estimate)", m.streams)
        yield _gauge("evstore_bytes", "Bytes on disk of the events table", m.total_bytes)
        parts = store.list_partitions()
        now = datetime.now(UTC)
        this_month = (now.year, now.month)
        count = GaugeMetricFamily("evstore_partitions", "Month partitions by when their month is",
                                  labels=["when"])
        size = GaugeMetricFamily("evstore_partition_bytes", "Bytes of the month partitions by when "
                                 "their month is", labels=["when"])
        buckets = {"past": [0, 0], "current": [0, 0], "ahead": [0, 0]}
        for p in parts:
            month = _month_key(p.month)
            when = "past" if month < this_month else "current" if month == this_month else "ahead"
            buckets[when][0] += 1
            buckets[when][1] += int(p.total_bytes or 0)
        for when, (n, b) in buckets.items():
            count.add_metric([when], n)
            size.add_metric([when], b)
        yield count
        yield size
        yield _gauge("evstore_partitions_ahead", "Month partitions after the current month",
                     buckets["ahead"][0])
        db = store.db
        with db.connection() as conn:
            row = conn.execute(db.sql("ops", "horizon_status")).fetchone()
        assert row is not None
        horizon, next_xid, oldest = int(row[0]), int(row[1]), float(row[2])
        yield _gauge("evstore_horizon_transactions_behind",
                     "Transaction ids between the global-order horizon and the next one", next_xid - horizon)
        yield _gauge("evstore_horizon_oldest_append_seconds",
                     "Age of the oldest transaction holding the append lock (holds the horizon back)",
                     oldest)
        yield _gauge("evstore_horizon", "The global-order horizon (a transaction id)", horizon)

    # -- jobs --------------------------------------------------------------------

    def _job_metrics(self, store: Any) -> Iterator[Metric]:
        db = store.db
        jobs = GaugeMetricFamily("evstore_jobs", "Jobs by kind and status", labels=["kind", "status"])
        batches = GaugeMetricFamily("evstore_job_batches", "Job batches by kind and status",
                                    labels=["kind", "status"])
        items = CounterMetricFamily("evstore_job_items_done", "Items done by succeeded batches",
                                    labels=["kind"])
        errors = CounterMetricFamily("evstore_job_failed_attempts", "Failed batch attempts recorded",
                                     labels=["kind"])
        durations = SummaryMetricFamily("evstore_job_batch_duration_seconds",
                                        "Run time of finished batches by kind and status",
                                        labels=["kind", "status"])
        queued = GaugeMetricFamily("evstore_job_queue_depth", "Batches waiting for a worker",
                                   labels=["kind"])
        running = GaugeMetricFamily("evstore_job_batches_running", "Batches running now", labels=["kind"])
        done: dict[str, int] = {}
        total_running = 0
        with db.connection() as conn:
            for kind, status, n in conn.execute(db.sql("jobs", "job_counts")):
                jobs.add_metric([kind, status], n)
            for kind, status, n, items_done in conn.execute(db.sql("jobs", "batch_counts")):
                batches.add_metric([kind, status], n)
                if status == "succeeded":
                    done[kind] = done.get(kind, 0) + int(items_done)
            for kind, n in conn.execute(db.sql("jobs", "error_counts")):
                errors.add_metric([kind], n)
            for kind, status, n, seconds in conn.execute(db.sql("ops", "batch_durations")):
                durations.add_metric([kind, status], count_value=n, sum_value=seconds)
            for kind, waiting, now_running in conn.execute(db.sql("ops", "queue_depth")):
                queued.add_metric([kind], waiting)
                running.add_metric([kind], now_running)
                total_running += int(now_running)
        for kind, n in done.items():
            items.add_metric([kind], n)
        yield from (jobs, batches, items, errors, durations, queued, running)
        if self.worker_capacity:
            yield _gauge("evstore_worker_threads", "Batch threads of this worker pool", self.worker_capacity)

    # -- consumers ---------------------------------------------------------------

    def _consumer_metrics(self, store: Any) -> Iterator[Metric]:
        from evstore.core.reader.checkpoints import CheckpointStore

        labels = ["checkpoint", "group"]
        lag = GaugeMetricFamily("evstore_consumer_lag_events", "Events a consumer group has still to "
                                "read (capped at 1,000,000)", labels=labels)
        lag_s = GaugeMetricFamily("evstore_consumer_lag_seconds", "Age of the oldest event a consumer "
                                  "group has not read", labels=labels)
        members = GaugeMetricFamily("evstore_consumer_members", "Live members of a consumer group",
                                    labels=labels)
        for g in CheckpointStore(store).groups(with_lag=True):
            key = [g.checkpoint_name, g.consumer_group]
            lag.add_metric(key, g.lag_events)
            lag_s.add_metric(key, g.lag_seconds)
            members.add_metric(key, g.members)
        yield from (lag, lag_s, members)

    # -- archive runs --------------------------------------------------------------

    def _archive_metrics(self, store: Any) -> Iterator[Metric]:
        db = store.db
        runs = GaugeMetricFamily("evstore_archive_runs", "Archive runs by status", labels=["status"])
        took = SummaryMetricFamily("evstore_archive_run_duration_seconds",
                                   "Run time of finished archive runs by status", labels=["status"])
        size = CounterMetricFamily("evstore_archive_bytes", "Bytes of archived segments (raw JSON "
                                   "lines, stored after compression)", labels=["form"])
        raw_total = stored_total = 0
        with db.connection() as conn:
            for status, n, finished, seconds, raw, stored in conn.execute(db.sql("ops", "archive_runs")):
                runs.add_metric([status], n)
                took.add_metric([status], count_value=finished, sum_value=seconds)
                raw_total += int(raw)
                stored_total += int(stored)
        size.add_metric(["raw"], raw_total)
        size.add_metric(["stored"], stored_total)
        yield from (runs, took, size)

    # -- the replica -------------------------------------------------------------

    def _replica_metrics(self, store: Any) -> Iterator[Metric]:
        from evstore.core import sql as named_sql

        from .health import connect

        assert self.read_url is not None
        with connect(self.read_url) as conn:
            row = conn.execute(named_sql.load("ops", "recovery_status")).fetchone()
        assert row is not None
        in_recovery, replay_age, replay_lsn = row
        yield _gauge("evstore_replica_in_recovery", "1 when DATABASE_READ_URL is a hot standby",
                     1 if in_recovery else 0)
        if not in_recovery or replay_lsn is None:
            return
        with store.db.connection() as conn:
            behind = conn.execute(store.db.sql("ops", "wal_bytes_behind"), [replay_lsn]).fetchone()
        assert behind is not None
        yield _gauge("evstore_replica_lag_bytes", "WAL bytes the read replica has not replayed",
                     max(int(behind[0]), 0))
        yield _gauge("evstore_replica_replay_age_seconds",
                     "Seconds since the read replica replayed a commit", float(replay_age or 0))

    def _local_metrics(self) -> Iterator[Metric]:
        if not self.local_pools:
            return
        conns = GaugeMetricFamily("evstore_db_pool_connections",
                                  "Connections of this process's pools by state", labels=["pool", "state"])
        waiting = GaugeMetricFamily("evstore_db_pool_waiting", "Requests waiting for a connection",
                                    labels=["pool"])
        for name, pool in self.local_pools.items():
            stats = pool.get_stats()
            size = int(stats.get("pool_size", 0))
            available = int(stats.get("pool_available", 0))
            conns.add_metric([name, "in_use"], size - available)
            conns.add_metric([name, "idle"], available)
            conns.add_metric([name, "max"], pool.max_size)
            waiting.add_metric([name], int(stats.get("requests_waiting", 0)))
        yield conns
        yield waiting


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, text)
    g.add_metric([], value)
    return g


def _month_key(month: Any) -> tuple[int, int]:
    if isinstance(month, str):
        year, mon = month.split("-")[:2]
        return int(year), int(mon)
    return int(month.year), int(month.month)
