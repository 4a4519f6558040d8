"""Scheduler replicas: each period fires once, whatever the number of replicas.

Two real `evstore scheduler` processes with interval triggers of 1 and 2 s,
a real worker pool running the jobs they enqueue, real Redis and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from evstore.core.jobs.firings import list_firings
from evstore.core.store.partitions import add_months, month_of, partition_name
from evstore.workers.engine import JobEngine
from evstore.workers.pool import WorkerPool, wait_for
from evstore.workers.settings import load_job_settings
from psycopg import sql

from evstore import PostgreSQLEventStore
from tests.integration.schedules.test_replicas import REDIS_URL

from .helpers import start_evstore

CONFIG = """
[schedules.partitions]
task = "partitions"
schedule = "interval: 1s"
months_ahead = 5

[schedules.partitions-slow]
task = "partitions"
schedule = "interval: 2s"
months_ahead = 5
"""
PERIODS = {"partitions": 1, "partitions-slow": 2}


def outcomes(log: Path) -> list[dict[str, str]]:
    found = []
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"firing.' in line:
            found.append(json.loads(line))
    return found


def drop_months_ahead(store: PostgreSQLEventStore) -> list[str]:
    now = month_of(datetime.now(UTC))
    names = [partition_name(add_months(now, i)) for i in range(1, 6)]
    with store.connection() as conn:
        for name in names:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(store.schema, name)))
    return names


@pytest.mark.slow
def test_two_replicas_fire_each_period_once(
    database_url: str, namespace: str, tmp_path: Path
) -> None:
    config = tmp_path / "evstore.toml"
    config.write_text(CONFIG)
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
           "EVSTORE_CONFIG": str(config), "EVSTORE_DRAMATIQ_NAMESPACE": namespace}
    with PostgreSQLEventStore(database_url) as store:
        # Given no partitions ahead of this month
        ahead = drop_months_ahead(store)
        assert not set(ahead) & {p.name for p in store.list_partitions()}

        # When two scheduler replicas and a worker pool run for several periods
        logs = {r: tmp_path / f"scheduler-{r}.log" for r in ("a", "b")}
        procs = {}
        for replica, log in logs.items():
            with open(log, "wb") as out:
                procs[replica] = start_evstore(
                    ["scheduler", "--replica", replica],
                    env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        workers = WorkerPool(database_url, REDIS_URL, processes=1, threads=2,
                             env={"EVSTORE_DRAMATIQ_NAMESPACE": namespace},
                             log_path=tmp_path / "workers.log").start()
        try:
            def both_fired_enough() -> bool:
                seen = [{(o["schedule"], o["scheduled_for"]) for o in outcomes(log)}
                        for log in logs.values()]
                common = seen[0] & seen[1]
                return sum(1 for s, _ in common if s == "partitions-slow") >= 3
            wait_for(both_fired_enough, 60, what="both replicas to fire 3 slow periods")
        finally:
            for proc in procs.values():
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs.values():
                proc.wait(30)

        # Then every period both replicas fired was claimed by exactly one of them
        per_slot: dict[tuple[str, str], list[str]] = defaultdict(list)
        for replica, log in logs.items():
            for o in outcomes(log):
                per_slot[(o["schedule"], o["scheduled_for"])].append(
                    f"{replica}:{o['event']}")
        shared = {k: v for k, v in per_slot.items() if len(v) == 2}
        assert len(shared) >= 6
        for slot, seen in shared.items():
            assert sorted(e.split(":")[1] for e in seen) == ["firing.enqueued", "firing.taken"], slot
        for slot, seen in per_slot.items():
            assert len(seen) <= 2, slot  # nobody fired a period twice

        # and the firings are one per period, with no gap, each with its own job
        firings = list_firings(store, limit=1000)
        for name, period in PERIODS.items():
            times = sorted(f.scheduled_for for f in firings if f.policy == name)
            assert len(times) >= 3
            assert all(b - a == timedelta(seconds=period) for a, b in pairwise(times))
        assert all(f.status == "enqueued" and f.job_id for f in firings)
        assert len({f.job_id for f in firings}) == len(firings)
        engine = JobEngine(store, None, load_job_settings(namespace=namespace))
        jobs = engine.list_jobs(kind="partitions", limit=1000)
        assert sorted(str(j.job_id) for j in jobs) == sorted(f.job_id for f in firings)

        # and the workers ran partition upkeep: five months ahead exist again
        try:
            wait_for(lambda: all(j.finished for j in engine.list_jobs(kind="partitions",
                                                                        limit=1000)),
                     60, what="the partition jobs to finish")
        finally:
            workers.stop()
            print([(j.job_id, j.status, j.batches_total) for j in engine.list_jobs(limit=1000)])
        assert all(j.status == "succeeded" for j in engine.list_jobs(kind="partitions", limit=1000))
        assert set(ahead) <= {p.name for p in store.list_partitions()}


@pytest.mark.slow
def test_a_period_claimed_by_a_killed_replica_is_enqueued_by_a_survivor(
    database_url: str, namespace: str, tmp_path: Path
) -> None:
    config = tmp_path / "evstore.toml"
    config.write_text('[schedules.upkeep]\ntask = "partitions"\nschedule = "interval: 1h"\n'
                      'months_ahead = 1\n')
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
           "EVSTORE_CONFIG": str(config), "EVSTORE_DRAMATIQ_NAMESPACE": namespace,
           "EVSTORE_SCHEDULER_CLAIM_GRACE": "1"}
    with PostgreSQLEventStore(database_url) as store:
        # Given a schedule that fired before, so a starting replica catches up its latest period
        from evstore.core.jobs.firings import claim_firing, record_firing
        from evstore.schedules.config import Trigger

        due = Trigger.parse("interval: 1h", "test").latest_due(datetime.now(UTC))
        assert due is not None
        claim_firing(store, "upkeep", due - timedelta(hours=3), "earlier")
        record_firing(store, "upkeep", due - timedelta(hours=3), status="enqueued",
                      job_kind="partitions", job_id="0")

        # When replica a claims that period and is killed before enqueueing its job
        def claimed_by(replica: str) -> Any:
            return next((f for f in list_firings(store, "upkeep")
                         if f.scheduled_for == due and f.replica == replica), None)

        with open(tmp_path / "a.log", "wb") as out:
            a = start_evstore(["scheduler", "--replica", "a"],
                              {**env, "EVSTORE_TEST_PAUSE_AFTER_CLAIM": "1"},
                              stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: claimed_by("a"), 60, what="replica a to claim the period")
        finally:
            os.killpg(a.pid, signal.SIGKILL)
            a.wait(30)
        firing = claimed_by("a")
        assert (firing.status, firing.job_id) == ("claimed", None)

        # Then a surviving replica enqueues it, once
        with open(tmp_path / "b.log", "wb") as out:
            b = start_evstore(["scheduler", "--replica", "b"], env, stdout=out,
                              stderr=subprocess.STDOUT, start_new_session=True)
        try:
            firing = wait_for(lambda: (lambda f: f if f and f.status == "enqueued" else None)(
                claimed_by("b")), 60, what="replica b to take the period over")
        finally:
            os.killpg(b.pid, signal.SIGTERM)
            b.wait(30)
        assert firing.job_kind == "partitions" and firing.job_id
        assert "taken over from a" in (firing.detail or "")
        engine = JobEngine(store, None, load_job_settings(namespace=namespace))
        jobs = [j for j in engine.list_jobs(kind="partitions", limit=100)
                if j.created_by and j.created_by.startswith("scheduler:upkeep")]
        assert [str(j.job_id) for j in jobs] == [firing.job_id]
        assert [f.scheduled_for for f in list_firings(store, "upkeep")] == [due, due - timedelta(hours=3)]
