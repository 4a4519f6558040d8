"""The environment evstore's worker processes start with (workers/pool.py)."""

from __future__ import annotations

from evstore.workers.pool import worker_env


def test_idle_workers_answer_within_a_fifth_of_a_second_unless_told_otherwise() -> None:
    env = worker_env("postgresql://db/x", "redis://r/0", base={})
    assert env["dramatiq_worker_timeout"] == "200"
    assert env["DATABASE_URL"] == "postgresql://db/x" and env["REDIS_URL"] == "redis://r/0"
    # an operator's own value is kept
    mine = worker_env("postgresql://db/x", "redis://r/0", base={"dramatiq_worker_timeout": "1000"})
    assert mine["dramatiq_worker_timeout"] == "1000"


def test_the_pool_holds_a_connection_per_thread_and_then_some() -> None:
    assert worker_env("postgresql://db/x", "redis://r/0", threads=8, base={})["EVENT_STORE_POOL_SIZE"] == "18"
    big = worker_env("postgresql://db/x", "redis://r/0", threads=8, base={"EVENT_STORE_POOL_SIZE": "40"})
    assert big["EVENT_STORE_POOL_SIZE"] == "40"
