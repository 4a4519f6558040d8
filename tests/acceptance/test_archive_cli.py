"""The `evstore archive` and `evstore schedules` commands, run as real subprocesses."""

from __future__ import annotations

import json
import os
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
        segment = next((tmp_path / "archive").rglob("segment-00002.jsonl.zst"))
        data = bytearray(segment.read_bytes())
        data[10] ^= 0xFF
        segment.write_bytes(bytes(data))
        bad = evstore(["archive", "verify", manifest], env)
        assert bad.returncode == 5 and "segment-00002.jsonl.zst" in bad.stderr

        # Bad input: exit 2 with one line naming the problem
        unknown = evstore(["archive", "preview", "nope"], env)
        assert unknown.returncode == 2 and "unknown archival policy 'nope'" in unknown.stderr
