"""Secrets in the configured URLs never reach the command's output."""

from __future__ import annotations

import pytest

from .helpers import evstore


@pytest.mark.parametrize("redis_url", [
    "redis://:hunter2@127.0.0.1:1/0",  # the password-only form
    "redis://default:hunter2@127.0.0.1:1/0",
    "redis://127.0.0.1:1/0?password=hunter2",
])
def test_redis_unavailable_does_not_show_its_password(env: dict[str, str], redis_url: str) -> None:
    out = evstore(["jobs", "requeue", "1"], {**env, "REDIS_URL": redis_url})
    assert out.returncode == 3, out.stderr
    assert "Redis is unavailable at" in out.stderr
    assert "hunter2" not in out.stderr + out.stdout and "***" in out.stderr


@pytest.mark.parametrize("database_url", [
    "postgresql://postgres@127.0.0.1:1/postgres?password=hunter2",
    "postgresql://postgres:hunter2@127.0.0.1:1/postgres",
    "postgresql://postgres@127.0.0.1:1/postgres?sslmode=disable&sslpassword=hunter2",
])
def test_database_unavailable_does_not_show_its_password(env: dict[str, str], database_url: str) -> None:
    out = evstore(["health"], {**env, "DATABASE_URL": database_url})
    assert out.returncode == 3, out.stderr
    assert "cannot connect to" in out.stderr and "Traceback" not in out.stderr
    assert "hunter2" not in out.stderr + out.stdout


def test_a_bad_keyword_connection_string_is_not_echoed(env: dict[str, str]) -> None:
    out = evstore(["health"], {**env, "DATABASE_URL": "host=db user=app password=hunter2"})
    assert out.returncode == 2, out.stderr
    assert "DATABASE_URL: must be a PostgreSQL URL" in out.stderr
    assert "hunter2" not in out.stderr + out.stdout
