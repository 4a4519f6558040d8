"""Fixtures of the spec's usage examples: a psycopg pool, the store, a user, worker processes.

The examples use ``connection_pool``, ``event_store`` and ``user_id`` without
defining them; these fixtures are those names. Each test gets a fresh database
(``database_url`` of tests/conftest.py) on the primary server.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

ROOT = Path(__file__).resolve().parents[2]


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run an example's coroutine on a fresh event loop (no asyncio plugin needed)."""
    return asyncio.run(coro)


@pytest.fixture
def connection_pool(database_url: str) -> Iterator[ConnectionPool]:
    """A plain psycopg pool, as a service would make it (nothing evstore-specific)."""
    pool = ConnectionPool(database_url, min_size=1, max_size=8, open=True)
    yield pool
    pool.close()


@pytest.fixture
def user_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def event_store(connection_pool: ConnectionPool) -> Iterator[Any]:
    """The aio store around the pool, as the Event Storage example builds it."""
    from evstore.aio import PostgreSQLEventStore

    store = PostgreSQLEventStore(connection_pool, schema_name="events")
    yield store
    store.calls.close()
    store.sync.close()


@pytest.fixture
def start_workers(database_url: str, redis_url: str, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Real `dramatiq` worker processes on this test's database and Redis namespace."""
    from evstore.workers.pool import WorkerPool

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p))
    for key, value in {"EVSTORE_JOB_SWEEP_INTERVAL": "0.5", "dramatiq_worker_timeout": "250",
                       "EVSTORE_JOB_MAX_RETRIES": "0"}.items():
        monkeypatch.setenv(key, value)
    pools: list[WorkerPool] = []

    def start(handler_modules: list[str], threads: int = 2) -> WorkerPool:
        log = tmp_path / f"workers-{len(pools) + 1}.log"
        pool = WorkerPool(database_url, redis_url, processes=1, threads=threads,
                          handler_modules=handler_modules, log_path=log, cwd=ROOT)
        pools.append(pool.start())
        return pool

    yield start
    for pool in pools:
        pool.stop(timeout=20)


@pytest.fixture
def only_these_handlers() -> Iterator[None]:
    """The replay registry holds only what the test registers (other test modules imported in
    this process registered theirs; a replay without handler names takes every one)."""
    from evstore.workers import handlers

    with handlers._LOCK:
        saved = dict(handlers._REGISTRY)
        handlers._REGISTRY.clear()
        handlers._REGISTRY.update({n: h for n, h in saved.items() if n in handlers.BUILTIN})
    yield
    with handlers._LOCK:
        handlers._REGISTRY.clear()
        handlers._REGISTRY.update(saved)
