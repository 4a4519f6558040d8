"""finalize_run re-checks every verified segment before deleting events: a data
file replaced on the target by other bytes of the same size is caught by its
SHA-256, and nothing is deleted."""

from __future__ import annotations

from pathlib import Path

import pytest
from evstore.core.archive import ArchivalPolicy, ArchiveTarget, export_segment, finalize_run, plan_run
from evstore.core.errors import ArchiveError

from evstore import PostgreSQLEventStore
from tests.integration.archive.helpers import month_start, populate, raw_rows

NOW = month_start(0).replace(day=20)


def test_finalize_deletes_events_after_their_segment_was_changed(
    database_url: str, tmp_path: Path
) -> None:
    url = f"file://{tmp_path}/archive"
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [2], streams=2, per_stream=5)
        original = raw_rows(store)
        policy = ArchivalPolicy(name="swap", strategy="time_based", retention_days=30,
                                target_url=url)
        run, _ = plan_run(store, policy, now=NOW)
        for number in range(1, run.segment_count + 1):
            export_segment(store, run.run_id, number)
        # The published data file is replaced by other bytes of the same size
        target = ArchiveTarget(url)
        path = target.path(run.data_path(1))
        size = len(target.fs.cat_file(path))
        target.fs.pipe_file(path, b"\0" * size)

        with pytest.raises(ArchiveError):
            finalize_run(store, run.run_id)
        assert raw_rows(store) == original
