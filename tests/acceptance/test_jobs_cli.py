"""The on-call commands in subprocesses: evstore replay, jobs list|show|requeue|cancel, worker."""

from __future__ import annotations

import json
import signal
import subprocess
from typing import Any

import pytest
from evstore.workers.pool import wait_for

from tests.integration.workers.conftest import (  # noqa: F401  (fixtures)
    broker,
    effects,
    job_env,
    jobs_store,
    seed,
    service,
    start_workers,
)

from .helpers import evstore, start_evstore


def _json(out: subprocess.CompletedProcess[str]) -> Any:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _jobs(store) -> int:
    with store.connection() as conn:
        return conn.execute(f"SELECT count(*) FROM {store.table('jobs')}").fetchone()[0]


@pytest.mark.slow
def test_poison_fails_one_batch_and_requeue_after_the_fix_completes(
    job_env, jobs_store, start_workers, service,  # noqa: F811
) -> None:
    # Given 180 events, one of them poison for the 'fragile' handler, and a worker
    seed(jobs_store, 60, 3, data=lambda s, i: {"poison": s == 17 and i == 2})
    poison = jobs_store.read_stream("User-17")[2]
    workers = start_workers(processes=1, threads=2)
    # When an operator starts the replay
    started = _json(evstore(["replay", "--handler", "fragile", "--batch-size", "30", "--json"],
                            job_env))
    job_id = started["job_id"]
    assert (started["events"], started["batches"]) == (180, 6)
    job = service.engine.wait(job_id, timeout=120)
    # Then that batch is failed with the event id and the error; the others succeeded
    assert job.status == "failed"
    shown = _json(evstore(["jobs", "show", str(job_id), "--json"], job_env))
    failed = [b for b in shown["batches"] if b["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["error_item"] == str(poison.event_id)
    assert "cannot digest poison in User-17" in failed[0]["last_error"]
    assert {b["status"] for b in shown["batches"]} == {"failed", "succeeded"}
    assert any(e["final"] and e["item"] == str(poison.event_id) for e in shown["errors"])
    listed = _json(evstore(["jobs", "list", "--status", "failed", "--json"], job_env))
    assert [j["job_id"] for j in listed] == [job_id]
    table = evstore(["jobs", "show", str(job_id)], job_env)
    assert "cannot digest poison" in table.stdout and str(poison.event_id) in table.stdout
    # When the handler is fixed (workers redeployed) and the operator requeues
    workers.stop()
    start_workers(processes=1, threads=2, EVSTORE_TEST_FIXED="1")
    out = evstore(["jobs", "requeue", str(job_id)], job_env)
    assert out.returncode == 0, out.stderr
    assert f"job {job_id}: requeued batch {failed[0]['number']}" in out.stdout
    # Then the job completes, every event delivered exactly once
    assert service.engine.wait(job_id, timeout=120).status == "succeeded"
    assert effects(jobs_store) == [(180, 180)]


@pytest.mark.slow
def test_replay_wait_shows_the_result_and_follow_a_finished_job(
    job_env, jobs_store, start_workers,  # noqa: F811
) -> None:
    seed(jobs_store, 50, 4)
    start_workers(processes=1, threads=2)
    out = evstore(["replay", "--handler", "record", "--handler", "only_logins", "--wait", "--json",
                   "--batch-size", "40"], job_env)
    result = _json(out)
    assert result["status"] == "succeeded"
    assert (result["successful_events"], result["failed_events"]) == (200, 0)
    assert result["handler_counts"] == {"record": 200, "only_logins": 50}
    follow = evstore(["jobs", "show", str(result["job_id"]), "--follow"], job_env)
    assert follow.returncode == 0, follow.stderr
    assert "succeeded" in follow.stdout and "200/200" in follow.stderr


def test_cancel_from_the_command_line(job_env, jobs_store) -> None:  # noqa: F811
    seed(jobs_store, 10, 2)
    job_id = _json(evstore(["replay", "--handler", "record", "--batch-size", "5", "--json"],
                           job_env))["job_id"]
    out = evstore(["jobs", "cancel", str(job_id)], job_env)
    assert out.returncode == 0, out.stderr
    assert f"job {job_id}: cancelled 5 batch(es)" in out.stdout
    shown = _json(evstore(["jobs", "show", str(job_id), "--json"], job_env))
    assert shown["job"]["status"] == "cancelled"
    metrics = evstore(["jobs", "metrics"], job_env).stdout
    assert 'evstore_jobs{kind="replay",status="cancelled"} 1.0' in metrics
    assert 'evstore_job_batches{kind="replay",status="cancelled"} 5.0' in metrics


@pytest.mark.slow
def test_bad_input_gives_a_clear_error_and_an_exit_code(job_env, jobs_store) -> None:  # noqa: F811
    seed(jobs_store, 3, 2)
    cases = [
        (["replay", "--handler", "nope"], 2, "unknown replay handler(s): nope"),
        (["replay", "--handler", "record", "--from-position", "9", "--to-position", "2"], 2,
         "inverted range"),
        (["replay", "--handler", "record", "--from-position", "500"], 2, "empty range"),
        (["replay", "--handler", "record", "--from-time", "yesterday"], 2,
         "--from-time: 'yesterday' is not an ISO 8601 time"),
        (["replay", "--handlers", "no.such.module"], 2,
         "cannot import replay handler module 'no.such.module'"),
        (["jobs", "show", "999"], 2, "no job with id 999"),
        (["jobs", "requeue", "999"], 2, "no job with id 999"),
        (["jobs", "list", "--status", "bogus"], 2, "unknown job status 'bogus'"),
    ]
    for args, code, message in cases:
        out = evstore(args, job_env)
        assert out.returncode == code, (args, out.stdout, out.stderr)
        assert message in " ".join(out.stderr.split()), (args, out.stderr)
        assert "Traceback" not in out.stderr
    # Redis down: exit 3 (service unavailable), and no job row is left behind
    down = evstore(["replay", "--handler", "record"], {**job_env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert down.returncode == 3, down.stderr
    assert "Redis is unavailable at redis://127.0.0.1:1/0" in " ".join(down.stderr.split())
    assert _jobs(jobs_store) == 0


@pytest.mark.parametrize("args, message", [
    (["jobs", "list", "--limit", "-1"], "--limit"),
    (["jobs", "list", "--limit", "0"], "--limit"),
    (["jobs", "list", "--limit", "10001"], "--limit"),
    (["jobs", "show", "-5"], "-5"),
    (["jobs", "show", "99999999999999999999"], "Invalid value for 'job_id'"),
    (["jobs", "cancel", "0"], "Invalid value for 'job_id'"),
    (["jobs", "requeue", "1", "--batch", "-1"], "--batch"),
    (["worker", "--processes", "0"], "--processes"),
    (["worker", "--threads", "-3"], "--threads"),
    (["worker", "--processes", "100000"], "--processes"),
    (["worker", "--shutdown-timeout", "-1"], "--shutdown-timeout"),
    (["replay", "--handler", "record", "--batch-size", "0"], "--batch-size"),
    (["replay", "--handler", "record", "--from-position", "-2"], "--from-position"),
    (["replay", "--handler", "record", "--to-position", "-2"], "--to-position"),
    (["replay", "--handler", "record", "--wait", "--timeout", "-1"], "--timeout"),
])
def test_numeric_options_out_of_range_are_refused(job_env, jobs_store, args, message) -> None:  # noqa: F811
    out = evstore(args, job_env)
    assert out.returncode == 2, (args, out.stdout, out.stderr)
    assert message in out.stderr, (args, out.stderr)
    assert "Traceback" not in out.stderr
    assert _jobs(jobs_store) == 0


@pytest.mark.slow
def test_worker_command_runs_jobs_and_stops_on_sigterm(job_env, jobs_store, service) -> None:  # noqa: F811
    seed(jobs_store, 20, 3)
    command = evstore(["worker", "--processes", "1", "--threads", "2", "--print-command"], job_env)
    assert "dramatiq evstore.workers.actors:broker --processes 1 --threads 2" in command.stdout
    proc = start_evstore(["worker", "--processes", "1", "--threads", "2",
                          "--handlers", "tests.integration.workers.handlers"],
                         job_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        from evstore.workers.replay import ReplayConfig

        result = service.replay_events(ReplayConfig(handler_names=["record"]), wait=True,
                                       timeout=120)
        assert result.status == "succeeded" and result.successful_events == 60
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    wait_for(lambda: proc.poll() is not None, timeout=5, what="the worker command to exit")
