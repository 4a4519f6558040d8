"""Back-ends load lazily, missing ones name their extra; the archive works on each server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from evstore.core.archive import ArchivalPolicy, EventArchiver, restore_archive, targets
from evstore.core.errors import ConfigurationError

from evstore import PostgreSQLEventStore

from .helpers import month_start, partition_names, populate, raw_rows


def test_importing_the_archive_loads_no_cloud_back_end() -> None:
    code = ("import sys, evstore.core.archive, evstore.cli.archive; "
            "print(sorted(m for m in ('s3fs', 'gcsfs', 'adlfs', 'fsspec') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_back_end_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(targets.BACKENDS, "s3", ("evstore_no_such_module", "s3"))
    with pytest.raises(ConfigurationError, match=r"pip install 'evstore\[s3\]'"):
        ArchivalPolicy(name="x", strategy="count_based", keep_events=1, target_url="s3://b/x")


def test_round_trip_on_each_server(pg_url: str, tmp_path: Path) -> None:
    """The primary server (PostgreSQL 15 in CI) and the embedded PostgreSQL 18."""
    with PostgreSQLEventStore(pg_url) as store:
        populate(store, [2, 0], streams=2, per_stream=4)
        original = raw_rows(store)
        policy = ArchivalPolicy(name="t", strategy="time_based", retention_days=31,
                                target_url=str(tmp_path / "a"), segment_size=3)
        result = EventArchiver(store).archive(policy, now=month_start(0).replace(day=20))
        assert result.events == 8 and len(result.run.dropped_partitions) == 1
        assert result.run.dropped_partitions[0] not in partition_names(store)
        restore_archive(store, str(tmp_path / "a"))
        assert raw_rows(store) == original
