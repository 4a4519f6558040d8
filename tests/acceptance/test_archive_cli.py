"""The `evstore archive` and `evstore schedules` commands, run as real subprocesses."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

from evstore import PostgreSQLEventStore
from tests.integration.archive.helpers import month_start, populate, raw_rows

from .helpers import evstore


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_preview_run_verify_restore_from_the_command_line(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "evstore.toml"
    config.write_text(f"""
[archive.policies.old-months]
strategy = "time_based"
retention_days = 0
target = "file://{tmp_path}/archive"
segment_size = 7
schedule = "cron: 0 3 * * *"
""")
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(DATABASE_URL=database_url, EVSTORE_CONFIG=str(config))
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [2, 1], streams=2, per_stream=5)
        original = raw_rows(store)
        assert all(r[13] < month_start(0) for r in original)

        listed = as_json(evstore(["archive", "policies", "--json"], env))
        assert [p["name"] for p in listed] == ["old-months"]

        preview = as_json(evstore(["archive", "preview", "old-months", "--json"], env))
        assert (preview["events"], preview["segments"], len(preview["partitions"])) == (20, 3, 2)
        assert raw_rows(store) == original

        ran = as_json(evstore(["archive", "run", "old-months", "--here", "--json"], env))
        assert ran["run"]["status"] == "completed" and ran["events"] == 20
        assert raw_rows(store) == []
        manifest = ran["run"]["manifest_url"]

        runs = as_json(evstore(["archive", "runs", "--json"], env))
        assert [r["run_id"] for r in runs] == [ran["run"]["run_id"]]

        verified = as_json(evstore(["archive", "verify", manifest, "--json"], env))
        assert verified["ok"] and verified["events"] == 20

        restored = as_json(evstore(["archive", "restore", manifest, "--json"], env))
        assert restored["events_restored"] == 20
        assert raw_rows(store) == original

        schedules = as_json(evstore(["schedules", "--json"], env))
        assert {s["name"] for s in schedules} == {"archive:old-months", "partitions"}

        # A flipped byte: verify exits 5 and names the file
        segment = next((tmp_path / "archive").rglob("segment-00002.tsv.zst"))
        data = bytearray(segment.read_bytes())
        data[10] ^= 0xFF
        segment.write_bytes(bytes(data))
        bad = evstore(["archive", "verify", manifest], env)
        assert bad.returncode == 5 and "segment-00002.tsv.zst" in bad.stderr

        # Bad input: exit 2 with one line naming the problem
        unknown = evstore(["archive", "preview", "nope"], env)
        assert unknown.returncode == 2 and "unknown archival policy 'nope'" in unknown.stderr


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_target_that_is_down_exits_3(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "evstore.toml"
    config.write_text(f"""
[storage.s3]
endpoint_url = "http://127.0.0.1:{closed_port()}"
key = "testing"
secret = "testing"

[archive.policies.cold]
strategy = "count_based"
keep_events = 0
target = "s3://evstore-down/events"
""")
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "EVSTORE_ARCHIVE_STORAGE_OPTIONS")}
    env.update(DATABASE_URL=database_url, EVSTORE_CONFIG=str(config))
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [1], streams=1, per_stream=3)
        original = raw_rows(store)
        for args in (["archive", "run", "cold", "--here"],
                     ["archive", "verify", "s3://evstore-down/events/cold/x/run.json"],
                     ["archive", "restore", "s3://evstore-down/events/cold/x"]):
            proc = evstore(args, env)
            assert proc.returncode == 3, (args, proc.returncode, proc.stderr)
            assert "unreachable" in proc.stderr and "Traceback" not in proc.stderr
            assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert raw_rows(store) == original


def test_unsigned_manifests_need_trust_unsigned_and_other_targets_are_refused(
    database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "evstore.toml"
    config.write_text(f"""
[archive.policies.old]
strategy = "count_based"
keep_events = 0
target = "file://{tmp_path}/archive"
""")
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "EVSTORE_ARCHIVE_TARGETS", "EVSTORE_ARCHIVE_STORAGE_OPTIONS")}
    env.update(DATABASE_URL=database_url, EVSTORE_CONFIG=str(config))
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [1], streams=1, per_stream=3)
        original = raw_rows(store)
        ran = as_json(evstore(["archive", "run", "old", "--here", "--json"], env))
        manifest = ran["run"]["manifest_url"]

        # An archive written before manifests were signed: refused, then trusted on request
        for path in (tmp_path / "archive").rglob("*.manifest.json"):
            body = json.loads(path.read_text())
            del body["signature"]
            path.write_text(json.dumps(body))
        run_json = next((tmp_path / "archive").rglob("run.json"))
        body = json.loads(run_json.read_text())
        del body["signature"]
        for seg in body["segments"]:
            data = (run_json.parent / seg["manifest"]).read_bytes()
            seg["manifest_sha256"] = hashlib.sha256(data).hexdigest()
        run_json.write_text(json.dumps(body))
        refused = evstore(["archive", "restore", manifest], env)
        assert refused.returncode == 5 and "not signed" in refused.stderr
        assert "--trust-unsigned" in refused.stderr
        assert raw_rows(store) == []
        assert as_json(evstore(["archive", "verify", manifest, "--trust-unsigned", "--json"],
                               env))["ok"]
        restored = as_json(evstore(["archive", "restore", manifest, "--trust-unsigned", "--json"],
                                   env))
        assert restored["events_restored"] == 3 and raw_rows(store) == original

        # A folder the configuration does not allow: exit 2, nothing read
        other = evstore(["archive", "verify", str(tmp_path / "elsewhere")], env)
        assert other.returncode == 2 and "not an allowed archive target" in other.stderr


def test_a_broken_policy_stops_only_the_commands_that_use_it(database_url: str, tmp_path: Path) -> None:
    # Given a configuration file with a good policy and one missing retention_days
    config = tmp_path / "evstore.toml"
    config.write_text(f"""
[archive.policies.good]
strategy = "count_based"
keep_events = 5
target = "file://{tmp_path}/archive"

[archive.policies.broken]
strategy = "time_based"
target = "file://{tmp_path}/archive"
""")
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "EVENT_STORE_RETENTION_DAYS")}
    env.update(DATABASE_URL=database_url, EVSTORE_CONFIG=str(config))
    # Then the good policy's commands work
    preview = evstore(["archive", "preview", "good", "--json"], env)
    assert preview.returncode == 0, preview.stderr
    # And the broken one's fail in one line naming the file, the policy and the key
    broken = evstore(["archive", "preview", "broken"], env)
    assert broken.returncode == 2 and "Traceback" not in broken.stderr
    assert str(config) in broken.stderr and "[archive.policies.broken]" in broken.stderr
    assert "retention_days" in broken.stderr
    # And the list shows both, the broken one with its error
    listed = as_json(evstore(["archive", "policies", "--json"], env))
    assert [p["name"] for p in listed] == ["good", "broken"]
    assert "retention_days" in listed[1]["error"]
