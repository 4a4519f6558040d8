"""`evstore snapshots build --in-process | --dry-run` and `evstore snapshots stats`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from evstore.core.snapshots.store import SnapshotStore

from .domain import Account, deposits

ROOT = Path(__file__).resolve().parents[3]
CLASS = "tests.integration.snapshots.domain:Account"


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("EVENT_STORE_")}
    e["DATABASE_URL"] = database_url
    e["COLUMNS"] = "200"
    return e


def evstore(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evstore.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_build_in_process_and_stats(env: dict[str, str], pstore: Any) -> None:
    for i in range(4):
        deposits(pstore, f"c{i}", 6 + i)
    dry = evstore(env, "snapshots", "build", CLASS, "--every", "8", "--min-events", "1",
                  "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["due"] == 2  # c2 (8 events) and c3 (9)

    out = evstore(env, "snapshots", "build", CLASS, "--every", "8", "--min-events", "1",
                  "--in-process", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["built"] == 2
    assert SnapshotStore(pstore).latest(Account, "c3").aggregate_version == 9  # type: ignore[union-attr]

    stats = evstore(env, "snapshots", "stats", "--json")
    [row] = json.loads(stats.stdout)
    assert (row["aggregate_type"], row["aggregates"], row["snapshots"]) == ("Account", 4, 2)
    assert row["codecs"] == ["zstd"] and row["stored_bytes"] > 0
    assert evstore(env, "snapshots", "stats").returncode == 0


def test_bad_input(env: dict[str, str]) -> None:
    out = evstore(env, "snapshots", "build", "no.such.module:Thing", "--in-process")
    assert out.returncode == 2 and "cannot import aggregate class" in out.stderr
    out = evstore(env, "snapshots", "build", CLASS, "--strategy", "sometimes", "--in-process")
    assert out.returncode == 2 and "sometimes" in out.stderr
