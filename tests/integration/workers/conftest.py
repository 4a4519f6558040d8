"""Fixtures of the job engine tests: a store, a broker, real `dramatiq` worker pools.

Worker settings are shortened for tests (and only for tests): the orphan sweep
runs every half second, Dramatiq considers a silent worker dead after 2 s and
checks for dead workers on every command, a failed batch is retried once
after 100 ms, and idle workers poll Redis every 250 ms.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from evstore import EventRecord, PostgreSQLEventStore

ROOT = Path(__file__).resolve().parents[3]
HANDLERS = "tests.integration.workers.handlers"
TEST_JOB_ENV = {
    "EVSTORE_JOB_SWEEP_INTERVAL": "0.5",
    "EVSTORE_BROKER_HEARTBEAT_TIMEOUT_MS": "2000",
    "EVSTORE_BROKER_MAINTENANCE_CHANCE": "1000000",
    "EVSTORE_JOB_MAX_RETRIES": "1",
    "EVSTORE_JOB_MIN_BACKOFF_MS": "100",
    "EVSTORE_JOB_MAX_BACKOFF_MS": "500",
    "EVSTORE_HANDLER_MODULES": HANDLERS,
    # Idle workers poll (and notice a shutdown) every 250 ms instead of 1 s.
    "dramatiq_worker_timeout": "250",
}


@pytest.fixture
def job_env(database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of this test's producers and workers (one database, one namespace)."""
    for key, value in TEST_JOB_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p))
    return dict(os.environ)


@pytest.fixture
def jobs_store(job_env: dict[str, str]) -> Iterator[PostgreSQLEventStore]:
    from tests.integration.workers.handlers import EFFECTS_DDL

    with PostgreSQLEventStore(job_env["DATABASE_URL"]) as store:
        with store.connection() as conn:
            conn.execute(EFFECTS_DDL)
        yield store


@pytest.fixture
def broker(job_env: dict[str, str]) -> Any:
    from evstore.workers.broker import make_broker

    b = make_broker(job_env["REDIS_URL"])
    yield b
    b.client.close()


@pytest.fixture
def service(jobs_store: PostgreSQLEventStore, broker: Any) -> Any:
    from evstore.workers.replay import EventReplayService

    import tests.integration.workers.handlers  # noqa: F401  (registers the handlers here too)

    return EventReplayService(jobs_store, broker)


@pytest.fixture
def start_workers(job_env: dict[str, str], tmp_path: Path,
                  request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Start a pool of real `dramatiq` worker processes; all are stopped after the test."""
    from evstore.workers.pool import WorkerPool

    pools: list[WorkerPool] = []

    def start(processes: int = 1, threads: int = 2, **env: str) -> WorkerPool:
        log = tmp_path / f"workers-{len(pools) + 1}.log"
        pool = WorkerPool(job_env["DATABASE_URL"], job_env["REDIS_URL"], processes=processes,
                          threads=threads, env=env, log_path=log, cwd=ROOT)
        pools.append(pool.start())
        return pool

    yield start
    for pool in pools:
        pool.terminate()
    for pool in pools:
        pool.stop(timeout=20)
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:  # pragma: no cover - diagnostics
        for log in sorted(tmp_path.glob("workers-*.log")):
            print(f"--- {log.name} ---\n{log.read_text()[-6000:]}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def seed(store: PostgreSQLEventStore, streams: int, per_stream: int, *, prefix: str = "User",
         event_type: Callable[[int], str] | None = None,
         data: Callable[[int, int], dict[str, Any]] | None = None, chunk: int = 5) -> int:
    """Append ``streams`` x ``per_stream`` events in rounds of ``chunk`` events per stream,
    so streams interleave in the global order (4 writer threads)."""
    kinds = event_type or (lambda i: ("UserRegistered", "UserLoggedIn", "EmailChanged")[min(i, 2)])
    make = data or (lambda s, i: {"n": i})

    def append(s: int, start: int) -> int:
        events = [EventRecord(str(s), prefix, kinds(i), make(s, i), aggregate_version=i + 1)
                  for i in range(start, min(start + chunk, per_stream))]
        store.append_events(f"{prefix}-{s}", events)
        return len(events)

    total = 0
    with ThreadPoolExecutor(4) as pool:
        for start in range(0, per_stream, chunk):
            total += sum(pool.map(lambda s, start=start: append(s, start), range(streams)))
    return total


def effects(store: PostgreSQLEventStore, sql: str = "SELECT count(*), count(DISTINCT event_id) "
            "FROM public.replay_effects", args: Any = None) -> Any:
    with store.connection() as conn:
        return conn.execute(sql, args).fetchall()
