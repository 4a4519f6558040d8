"""A command that starts the embedded Redis (no REDIS_URL) stops it when it exits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from evstore.core.jobs.model import BatchPlan
from evstore.core.jobs.repository import JobRepository

from evstore import PostgreSQLEventStore

from .helpers import evstore


def _servers_under(home: Path) -> list[psutil.Process]:
    """The redis-server processes running in ``home`` (the embedded Redis' folder)."""
    found = []
    for proc in psutil.process_iter(["name", "cwd"]):
        cwd = proc.info.get("cwd") or ""
        if "redis-server" in (proc.info.get("name") or "") and cwd.startswith(str(home)):
            found.append(proc)
    return found


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    for proc in _servers_under(tmp_path):  # what a failing run left behind: ours to stop
        proc.kill()


@pytest.fixture
def embedded_env(env: dict[str, str], home: Path) -> dict[str, str]:
    e = {k: v for k, v in env.items() if k not in ("REDIS_URL", "EVSTORE_DRAMATIQ_NAMESPACE")}
    e["EVSTORE_HOME"] = str(home)
    return e


def test_requeue_on_success_leaves_no_redis_running(
    embedded_env: dict[str, str], home: Path, database_url: str
) -> None:
    # Given a job with nothing to requeue
    with PostgreSQLEventStore(database_url) as store:
        job_id = JobRepository(store).create("replay", {}, [BatchPlan(params={}, items=1)])
    # When it is requeued on the embedded Redis
    out = evstore(["jobs", "requeue", str(job_id)], embedded_env)
    assert out.returncode == 0, out.stderr
    assert "using the embedded Redis" in out.stderr and f"job {job_id}: " in out.stdout
    # Then the Redis server it started is gone
    assert _servers_under(home) == []


def test_requeue_on_error_leaves_no_redis_running(embedded_env: dict[str, str], home: Path) -> None:
    out = evstore(["jobs", "requeue", "999999"], embedded_env)
    assert out.returncode == 2 and "no job with id 999999" in out.stderr
    assert "using the embedded Redis" in out.stderr
    assert _servers_under(home) == []
