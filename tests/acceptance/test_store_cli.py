"""The real `evstore` command in subprocesses, as an operator or a script runs it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psycopg
import pytest

from .helpers import evstore


def _line(agg: str, event_type: str, version: int | None = None, **data: object) -> str:
    obj: dict[str, object] = {"aggregate_type": "User", "aggregate_id": agg, "event_type": event_type,
                              "event_data": data}
    if version is not None:
        obj["aggregate_version"] = version
    return json.dumps(obj)


def test_append_then_read_as_json(env: dict[str, str]) -> None:
    # Given two users' events as JSON lines
    lines = "\n".join([_line("1", "UserRegistered", 1, email="a@x.test"),
                       _line("1", "EmailChanged", 2, email="b@x.test"),
                       _line("2", "UserRegistered", 1, email="c@x.test")])
    # When they are appended from standard input
    out = evstore(["append", "-", "--json"], env, stdin=lines)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["appended"] == 3
    # Then a script can read them back
    read = evstore(["read", "User-1", "--json"], env)
    events = json.loads(read.stdout)
    assert [e["event_type"] for e in events] == ["UserRegistered", "EmailChanged"]
    assert [e["stream_position"] for e in events] == [1, 2]
    page = json.loads(evstore(["read-all", "--json", "--limit", "10"], env).stdout)
    assert len(page["events"]) == 3 and page["at_end"] is True


def test_malformed_line_is_named_and_nothing_is_written(env: dict[str, str]) -> None:
    lines = "\n".join([_line("1", "UserRegistered", 1), "{not json", _line("1", "", 2),
                       json.dumps({"aggregate_type": "User"})])
    out = evstore(["append", "-"], env, stdin=lines)
    assert out.returncode == 2
    assert "line 2: not valid JSON" in out.stderr
    assert "line 3" in out.stderr and "event_type" in out.stderr
    assert "line 4: missing field(s) aggregate_id, event_type" in out.stderr
    assert "Traceback" not in out.stderr
    page = json.loads(evstore(["read-all", "--json"], env).stdout)
    assert page["events"] == []


def test_version_conflict_exits_4_and_changes_nothing(env: dict[str, str]) -> None:
    assert evstore(["append", "-"], env, stdin=_line("1", "UserRegistered", 1)).returncode == 0
    out = evstore(["append", "-"], env, stdin=_line("1", "UserRegistered", 1, other=True).replace(
        '"aggregate_version": 1',
        '"aggregate_version": 1, "event_id": "00000000-0000-0000-0000-000000000001"'))
    assert out.returncode == 4, out.stderr
    assert "expected version no stream, but the stream is at version 1" in out.stderr
    assert len(json.loads(evstore(["read", "User-1", "--json"], env).stdout)) == 1


def test_verify_reports_a_tampered_row_with_exit_5(env: dict[str, str], database_url: str) -> None:
    lines = "\n".join(_line(str(i), "UserRegistered", 1, n=i) for i in range(5))
    assert evstore(["append", "-"], env, stdin=lines).returncode == 0
    assert evstore(["verify"], env).returncode == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        # as a superuser would, past the append-only trigger
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE events.events SET event_data = '{\"n\": 99}' WHERE stream_id = 'User-3'")
    out = evstore(["verify", "--json"], env)
    assert out.returncode == 5
    report = json.loads(out.stdout)
    assert report["checked"] == 5 and len(report["mismatches"]) == 1
    assert report["mismatches"][0]["stream_id"] == "User-3"
    read = evstore(["read", "User-3"], env)
    assert read.returncode == 5 and "fails its checksum" in read.stderr


def test_verify_upgrade_re_signs_version_1_checksums(env: dict[str, str], database_url: str) -> None:
    # Given events whose checksums are version 1 (as stored before migration 0006)
    from evstore.core.serialization import checksum, dumps

    lines = "\n".join(_line(str(i), "UserRegistered", 1, n=i) for i in range(3))
    assert evstore(["append", "-"], env, stdin=lines).returncode == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        rows = conn.execute(
            "SELECT event_id, stream_id, aggregate_id, event_type, created_at, event_data, metadata"
            " FROM events.events").fetchall()
        for event_id, stream, agg, event_type, created, data, meta in rows:
            old = checksum(event_id=str(event_id), stream_id=stream, stream_position=1,
                           aggregate_id=agg, aggregate_type="User", event_type=event_type,
                           event_version=1, created_at=created, data_json=dumps(data),
                           metadata_json=dumps(meta))
            conn.execute("UPDATE events.events SET checksum = %s WHERE event_id = %s", [old, event_id])
    # Then plain verify refuses them (exit 5), naming the way out
    out = evstore(["verify"], env)
    assert out.returncode == 5 and "verify --upgrade" in out.stdout + out.stderr
    # And verify --upgrade checks and re-signs each, after which all verify
    up = evstore(["verify", "--upgrade", "--json"], env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert json.loads(up.stdout)["upgraded"] == 3
    assert evstore(["verify"], env).returncode == 0


def test_tail_follows_from_start(env: dict[str, str]) -> None:
    lines = "\n".join(_line(str(i), "UserLoggedIn", 1, n=i) for i in range(4))
    assert evstore(["append", "-"], env, stdin=lines).returncode == 0
    out = evstore(["tail", "--from-start", "--max-events", "4", "--idle-timeout", "10"], env)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert [r["event_data"]["n"] for r in rows] == [0, 1, 2, 3]
    assert all(":" in r["checkpoint"] for r in rows)


def test_health_partitions_and_metrics(env: dict[str, str]) -> None:
    health = evstore(["health", "--json"], env)
    assert health.returncode == 0 and json.loads(health.stdout)["ok"] is True
    parts = json.loads(evstore(["partitions", "list", "--json"], env).stdout)
    assert len(parts) >= 2
    metrics = evstore(["metrics"], env).stdout
    assert 'evstore_events{schema="events"} 0.0' in metrics


def test_unhealthy_when_schema_missing(env: dict[str, str]) -> None:
    out = evstore(["health", "--json"], {**env, "EVENT_STORE_SCHEMA": "nothing_here"})
    assert out.returncode == 1
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    assert checks["schema"]["ok"] is False and "evstore init" in checks["schema"]["detail"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("EVENT_STORE_BATCH_SIZE", "lots"), ("EVENT_STORE_SCHEMA", "Bad-Name"),
     ("DATABASE_URL", "mysql://x"), ("EVENT_STORE_COMPRESSION", "brotli")],
)
def test_bad_environment_is_named_without_traceback(env: dict[str, str], name: str, value: str) -> None:
    out = evstore(["health"], {**env, name: value})
    assert out.returncode == 2
    assert name in out.stderr and "Traceback" not in out.stderr


def test_unreachable_database_exits_3(env: dict[str, str]) -> None:
    out = evstore(["health"], {**env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing"})
    assert out.returncode == 3
    assert "cannot connect to postgresql://postgres@127.0.0.1:1/nothing" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_demo_on_the_embedded_default_keeps_its_data(tmp_path: Path) -> None:
    # Given a machine with no DATABASE_URL
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["EVSTORE_HOME"] = str(tmp_path / "home")
    # When the demo runs twice
    small = ["--power-users", "2", "--power-logins", "200"]
    first = evstore(["demo", "--users", "150", "--seed", "1", *small], env, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    stats1 = json.loads(evstore(["stats", "--json"], env).stdout)
    second = evstore(["demo", "--users", "100", "--seed", "2", *small], env, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    stats2 = json.loads(evstore(["stats", "--json"], env).stdout)
    # Then the second run found the first one's events and added its own
    assert stats1["events"] > 150
    assert f"{stats1['events']:,} before" in second.stdout
    assert stats2["events"] > stats1["events"]
    # 100 users, 2 power users, the privacy step's 30 members, the query step's burst user
    assert stats2["streams"] == stats1["streams"] + 100 + 2 + 30 + 1
    assert "no mismatch" in second.stdout
    # And every part of the demo reported success (it exits 1 otherwise)
    assert "read model equals the events written: yes" in second.stdout
    assert "succeeded" in second.stdout  # the replay job on the workers


def test_missing_or_outdated_schema_is_refused_with_the_command_to_run(
    env: dict[str, str], database_url: str
) -> None:
    # Given a schema that does not exist
    out = evstore(["read-all"], {**env, "EVENT_STORE_SCHEMA": "nothing_here"})
    assert out.returncode == 3
    assert "'nothing_here' does not exist: run 'evstore init'" in out.stderr
    # And one whose migrations stopped at the first
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM events.schema_migrations WHERE version > 1")
    for command in (["read-all"], ["jobs", "list"], ["consumers", "list"]):
        out = evstore(command, env)
        assert out.returncode == 3, (command, out.stderr)
        assert "is at migration 1 of" in out.stderr and "run 'evstore init'" in out.stderr
        assert "Traceback" not in out.stderr
