"""`evstore snapshots build --in-process | --dry-run` and `evstore snapshots stats`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from evstore.core.snapshots.store import SnapshotStore

from tests.integration.snapshots.domain import Account, deposits

from .helpers import ROOT, evstore

CLASS = "tests.integration.snapshots.domain:Account"


@pytest.fixture
def env(env: dict[str, str]) -> dict[str, str]:
    """The aggregate class is imported from PYTHONPATH (never the current folder)."""
    return {**env, "PYTHONPATH": str(ROOT)}


def test_build_in_process_and_stats(env: dict[str, str], pstore: Any) -> None:
    for i in range(4):
        deposits(pstore, f"c{i}", 6 + i)
    dry = evstore(["snapshots", "build", CLASS, "--every", "8", "--min-events", "1",
                   "--dry-run", "--json"], env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["due"] == 2  # c2 (8 events) and c3 (9)

    out = evstore(["snapshots", "build", CLASS, "--every", "8", "--min-events", "1",
                   "--in-process", "--json"], env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["built"] == 2
    assert SnapshotStore(pstore).latest(Account, "c3").aggregate_version == 9  # type: ignore[union-attr]

    stats = evstore(["snapshots", "stats", "--json"], env)
    [row] = json.loads(stats.stdout)
    assert (row["aggregate_type"], row["aggregates"], row["snapshots"]) == ("Account", 4, 2)
    assert row["codecs"] == ["zstd"] and row["stored_bytes"] > 0
    assert evstore(["snapshots", "stats"], env).returncode == 0


def test_bad_input(env: dict[str, str]) -> None:
    out = evstore(["snapshots", "build", "no.such.module:Thing", "--in-process"], env)
    assert out.returncode == 2 and "cannot import aggregate class" in out.stderr
    out = evstore(["snapshots", "build", CLASS, "--strategy", "sometimes", "--in-process"], env)
    assert out.returncode == 2 and "sometimes" in out.stderr
