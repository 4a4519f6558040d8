"""`evstore serve` as a real process over real HTTP: /livez, /readyz, /metrics."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
from evstore.core import sql as named_sql

from .helpers import EVSTORE, free_port, get, metric_value, process, wait_http

SERVE = [*EVSTORE, "serve", "--no-console", "--port"]


def test_serve_answers_live_ready_and_metrics(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {"DATABASE_URL": database_url, "EVSTORE_HORIZON_STALL_SECONDS": "1"}
    with process([*SERVE, str(port)], env, tmp_path / "serve.log") as proc:
        assert wait_http(port, "/livez", proc=proc).json()["status"] == "alive"
        ready = wait_http(port, "/readyz", proc=proc)
        assert ready.json()["ready"] is True
        assert {c["name"] for c in ready.json()["checks"]} == {"database", "schema", "horizon"}
        text = get(port, "/metrics").text
        assert metric_value(text, "evstore_scrape_ok") == 1
        assert metric_value(text, "evstore_partitions_ahead") >= 1
        assert metric_value(text, "evstore_events") is not None
        assert metric_value(text, "process_resident_memory_bytes") > 0

        # A writer that holds the append lock holds the horizon back: not ready, with the reason.
        with psycopg.connect(database_url, autocommit=False) as conn:
            conn.execute(named_sql.load("store", "lock_stream", "events"), {"lock_key": "stuck"})
            stalled = wait_http(port, "/readyz", status=503, deadline=30)
            assert "horizon: stalled" in stalled.json()["reason"]
            assert get(port, "/livez").status_code == 200
            text = get(port, "/metrics").text
            assert metric_value(text, "evstore_horizon_oldest_append_seconds") >= 1
            conn.rollback()
        wait_http(port, "/readyz", status=200, deadline=30)


def test_not_ready_names_the_reason_and_livez_needs_nothing(database_url: str, tmp_path: Path) -> None:
    # A schema that was never initialised: 503, and the command that fixes it.
    port = free_port()
    env = {"DATABASE_URL": database_url, "EVENT_STORE_SCHEMA": "never_made"}
    with process([*SERVE, str(port)], env, tmp_path / "serve.log") as proc:
        wait_http(port, "/livez", proc=proc)
        r = get(port, "/readyz")
        assert r.status_code == 503
        assert "run 'evstore init'" in r.json()["reason"]

    # No database at all: alive at once, not ready, the password never shown.
    dead = free_port()
    port = free_port()
    env = {"DATABASE_URL": f"postgresql://postgres:s3cret-pw@127.0.0.1:{dead}/postgres"}
    with process([*SERVE, str(port)], env, tmp_path / "serve.log") as proc:
        assert wait_http(port, "/livez", proc=proc).status_code == 200
        r = get(port, "/readyz")
        assert r.status_code == 503
        assert r.json()["reason"].startswith("database:")
        assert "s3cret-pw" not in r.text
        text = get(port, "/metrics").text
        assert metric_value(text, "evstore_scrape_ok") == 0
        assert "s3cret-pw" not in text


def test_a_port_in_use_is_one_clear_line_and_exit_3(database_url: str, tmp_path: Path) -> None:
    import socket
    import subprocess

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([*SERVE, str(port)], env={**os.environ, "DATABASE_URL": database_url},
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert f"error: could not listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
