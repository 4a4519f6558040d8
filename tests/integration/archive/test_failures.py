"""Failures mid-run lose no event, and running the policy again completes the run.

finalize_run re-checks every verified segment before deleting events: a data
file replaced on the target by other bytes of the same size is caught by its
SHA-256, and nothing is deleted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from evstore.core.archive import (
    ArchivalPolicy,
    ArchiveTarget,
    EventArchiver,
    export_segment,
    finalize_run,
    get_run,
    list_runs,
    list_segments,
    plan_run,
    restore_archive,
    run_policy,
)
from evstore.core.errors import ArchiveError
from evstore.core.store.partitions import month_of, partition_name
from fsspec.implementations.local import LocalFileSystem

from evstore import PostgreSQLEventStore

from .conftest import Emulators, target_url_for
from .helpers import month_start, populate, raw_rows

NOW = month_start(0).replace(day=20)


class CorruptingFileSystem(LocalFileSystem):
    """A real local file system whose first ``bad`` data writes lose a byte on the way."""

    def __init__(self, bad: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bad = bad

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        if self.bad and ".tsv.zst" in path:
            self.bad -= 1
            value = value[:-1]
        super().pipe_file(path, value, mode=mode, **kwargs)


def test_checksum_mismatch_on_read_back_publishes_nothing_and_deletes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    url = f"file://{tmp_path}/archive"
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [3, 2], streams=2, per_stream=10)
        original = raw_rows(store)
        policy = ArchivalPolicy(name="t", strategy="time_based", retention_days=30,
                                target_url=url, segment_size=10)
        target = ArchiveTarget(url)
        target._fs = CorruptingFileSystem(bad=2, auto_mkdir=True)
        target.root = str(tmp_path / "archive")

        # When two uploads come back different from what was written
        with pytest.raises(ArchiveError, match="2 of 4 segment"):
            run_policy(store, policy, target=target, workers=1, now=NOW)

        # Then nothing was deleted, and the bad segments were never published
        assert raw_rows(store) == original
        run = get_run(store, store_runs(store)[0])
        statuses = [s.status for s in list_segments(store, run.run_id)]
        assert statuses.count("pending") == 2 and statuses.count("verified") == 2
        published = sorted(p.name for p in (tmp_path / "archive").rglob("*.tsv.zst"))
        assert len(published) == 2
        assert not list((tmp_path / "archive").rglob("*.tmp-*"))

        # When the policy runs again on a sound target, it resumes the same run
        result = run_policy(store, policy, now=NOW)
        assert result.resumed and result.run.run_id == run.run_id
        assert (result.segments_uploaded, result.segments_skipped) == (2, 2)
        assert raw_rows(store) == []
        restore_archive(store, result.run.manifest_url)
        assert raw_rows(store) == original


def store_runs(store: PostgreSQLEventStore) -> list[str]:
    return [r.run_id for r in list_runs(store)]


def test_target_stopped_mid_run_loses_nothing(database_url: str, emulators: Emulators,
                                              tmp_path: Path) -> None:
    url = target_url_for("s3", emulators, tmp_path)
    moto = emulators.by_target["s3"]
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [2], streams=4, per_stream=10)
        original = raw_rows(store)
        policy = ArchivalPolicy(name="s", strategy="count_based", keep_events=2,
                                target_url=url, segment_size=8)
        archiver = EventArchiver(store, workers=1)
        kept = [r for r in original if r.stream_position > 8]  # stream_position > 10 - 2

        # When the S3 endpoint stops after the first segment is uploaded
        def stop_target(result: Any) -> None:
            if result.number == 1:
                moto.stop()

        try:
            with pytest.raises(ArchiveError, match="incomplete, nothing was deleted"):
                archiver.archive(policy, on_segment=stop_target)
            # Then every event is still in PostgreSQL; so after another failed attempt
            assert raw_rows(store) == original
            with pytest.raises(ArchiveError, match="unreachable"):
                archiver.archive(policy)
            assert raw_rows(store) == original
        finally:
            emulators.ensure("s3")  # started again, empty: segment 1 is gone too

        # When the target is back, running the policy again completes the same run
        result = archiver.archive(policy)
        assert result.resumed
        assert result.segments_uploaded == 4  # segment 1 was re-checked and uploaded again
        assert raw_rows(store) == kept
        restore_archive(store, result.run.manifest_url)
        assert raw_rows(store) == original


def test_events_arriving_in_a_month_being_archived_keep_its_partition(
    database_url: str, tmp_path: Path
) -> None:
    url = f"file://{tmp_path}/archive"
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [2], streams=2, per_stream=5)
        policy = ArchivalPolicy(name="late", strategy="time_based", retention_days=30,
                                target_url=url)
        run, _ = plan_run(store, policy, now=NOW)
        export_segment(store, run.run_id, 1)

        # When an event dated in that month commits after the run was planned
        populate(store, [2], streams=1, per_stream=1, prefix="late")
        done = finalize_run(store, run.run_id)

        # Then the partition is kept with every event, and the run says why
        month = partition_name(month_of(month_start(2)))
        assert done.status == "completed" and done.dropped_partitions == []
        assert done.last_error and month in done.last_error
        assert len(raw_rows(store)) == 11

        # and the next run archives the whole month, late event included
        again = run_policy(store, policy, now=NOW)
        assert again.events == 11 and again.run.dropped_partitions == [month]
        assert raw_rows(store) == []


def test_finalize_deletes_nothing_after_a_segment_was_changed(
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
