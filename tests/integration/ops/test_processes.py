"""HTTP endpoints of the long-running processes, over real HTTP, after real activity:
a worker pool running a replay, a scheduler, a reader of a consumer group, and the
process-local instruments of a process that appends."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from evstore import ConcurrencyError, EventRecord, PostgreSQLEventStore
from tests.integration.workers.conftest import HANDLERS, ROOT, TEST_JOB_ENV, seed
from tests.integration.workers.handlers import EFFECTS_DDL

from .helpers import EVSTORE, free_port, get, metric_value, process, wait_http


@pytest.fixture
def env(database_url: str, redis_url: str) -> dict[str, str]:
    import os

    return {**TEST_JOB_ENV, "DATABASE_URL": database_url, "REDIS_URL": redis_url,
            "EVSTORE_DRAMATIQ_NAMESPACE": os.environ["EVSTORE_DRAMATIQ_NAMESPACE"],
            "PYTHONPATH": str(ROOT), "EVSTORE_HANDLER_MODULES": HANDLERS}


def test_worker_pool_serves_readiness_and_job_metrics(env: dict[str, str], tmp_path: Path) -> None:
    from evstore.workers.broker import make_broker
    from evstore.workers.replay import EventReplayService, ReplayConfig

    import tests.integration.workers.handlers  # noqa: F401  (the handlers, here too)

    port = free_port()
    with PostgreSQLEventStore(env["DATABASE_URL"]) as store:
        with store.connection() as conn:
            conn.execute(EFFECTS_DDL)
        seed(store, 20, 10)
        args = [*EVSTORE, "worker", "-p", "1", "-t", "2", "--http-port", str(port)]
        with process(args, env, tmp_path / "worker.log") as proc:
            wait_http(port, "/livez", proc=proc)
            ready = wait_http(port, "/readyz", proc=proc).json()
            assert {"database", "schema", "horizon", "redis", "workers"} <= {
                c["name"] for c in ready["checks"]}
            broker = make_broker(env["REDIS_URL"])
            try:
                result = EventReplayService(store, broker).replay_events(
                    ReplayConfig(handler_names=["record"], batch_size=50), wait=True, timeout=120)
            finally:
                broker.client.close()
            assert result.status == "succeeded"
            text = get(port, "/metrics").text
            assert metric_value(text, "evstore_jobs", {"kind": "replay", "status": "succeeded"}) == 1
            assert metric_value(text, "evstore_job_batches",
                                {"kind": "replay", "status": "succeeded"}) == 4
            assert metric_value(text, "evstore_job_batch_duration_seconds_count",
                                {"kind": "replay", "status": "succeeded"}) == 4
            assert metric_value(text, "evstore_job_items_done_total", {"kind": "replay"}) == 200
            assert metric_value(text, "evstore_worker_threads") == 2


def test_scheduler_serves_readiness(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "evstore.toml"
    config.write_text('[schedules.upkeep]\ntask = "partitions"\nschedule = "interval: 1h"\n')
    port = free_port()
    args = [*EVSTORE, "scheduler", "--replica", "a", "--http-port", str(port)]
    with process(args, {**env, "EVSTORE_CONFIG": str(config)}, tmp_path / "scheduler.log") as proc:
        wait_http(port, "/livez", proc=proc)
        ready = wait_http(port, "/readyz", proc=proc).json()
        assert ready["role"] == "scheduler"
        assert {"database", "schema", "horizon", "redis"} <= {c["name"] for c in ready["checks"]}
        text = get(port, "/metrics").text
        assert metric_value(text, "evstore_db_pool_connections", {"pool": "primary", "state": "max"}) >= 1


def test_reader_process_reports_its_groups_lag(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    with PostgreSQLEventStore(database_url) as store:
        seed(store, 10, 10)
        args = [sys.executable, str(Path(__file__).with_name("reader_proc.py")), "projector", "g", "m1"]
        env = {"DATABASE_URL": database_url, "EVSTORE_HTTP_PORT": str(port), "PYTHONPATH": str(ROOT)}
        with process(args, env, tmp_path / "reader.log") as proc:
            wait_http(port, "/readyz", proc=proc)
            labels = {"checkpoint": "projector", "group": "g"}

            def lag() -> float | None:
                return metric_value(get(port, "/metrics").text, "evstore_consumer_lag_events", labels)

            from evstore.workers.pool import wait_for

            wait_for(lambda: lag() == 0, timeout=60, what="the group to catch up")
            text = get(port, "/metrics").text
            assert metric_value(text, "evstore_consumer_members", labels) == 1
            # The process's own reads are counted by the read instruments.
            assert metric_value(text, "evstore_read_events_total",
                                {"operation": "read_all", "source": "primary"}) >= 100


def test_append_latency_conflicts_and_archive_metrics(database_url: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from evstore.core.config import load_settings

    from evstore.http import build_ops, start_ops_server

    ops = build_ops("test", load_settings(database_url=database_url), database_url)
    ops.readiness.mark_started()
    server = start_ops_server(ops, "127.0.0.1", 0)
    assert server is not None
    try:
        before = get(server.port, "/metrics").text
        ok0 = metric_value(before, "evstore_append_seconds_count", {"outcome": "ok"}) or 0
        conflicts0 = metric_value(before, "evstore_append_conflicts_total") or 0
        with PostgreSQLEventStore(database_url) as store:
            stream = f"User-{uuid.uuid4().hex[:8]}"
            for v in range(1, 11):
                store.append_events(stream, [EventRecord(stream, "User", "Seen", {"n": v},
                                                         aggregate_version=v)])
            assert len(store.read_stream(stream)) == 10
            with pytest.raises(ConcurrencyError):
                store.append_events(stream, [EventRecord(stream, "User", "Seen", {"n": 0},
                                                         aggregate_version=3)])
            # and an archive run of those events to a folder
            from evstore.core.archive import ArchivalPolicy, EventArchiver

            target = f"file://{tmp_path}/archive"
            monkeypatch.setenv("EVSTORE_ARCHIVE_TARGETS", target)
            EventArchiver(store).archive(ArchivalPolicy(
                name="ops", strategy="count_based", keep_events=0, target_url=target, segment_size=5))
        text = get(server.port, "/metrics").text
        assert metric_value(text, "evstore_archive_runs", {"status": "completed"}) == 1
        assert metric_value(text, "evstore_archive_run_duration_seconds_count",
                            {"status": "completed"}) == 1
        assert metric_value(text, "evstore_archive_bytes_total", {"form": "raw"}) > 0
        assert metric_value(text, "evstore_append_seconds_count", {"outcome": "ok"}) == ok0 + 10
        assert metric_value(text, "evstore_append_conflicts_total") == conflicts0 + 1
        assert metric_value(text, "evstore_read_seconds_count",
                            {"operation": "read_stream", "source": "primary"}) >= 1
        assert metric_value(text, "evstore_append_seconds_bucket", {"outcome": "ok", "le": "+Inf"}) \
            == ok0 + 10
        assert metric_value(text, "evstore_events") is not None
    finally:
        server.stop()
        ops.close()
