"""One contract, every target: local files, S3 (moto), GCS (gcp-storage-emulator), Azure (Azurite).

Real HTTP to real emulator processes; nothing is mocked.
"""

from __future__ import annotations

import pytest
from evstore.core.archive import (
    ArchivalPolicy,
    ArchiveTarget,
    EventArchiver,
    restore_archive,
    verify_archive,
)
from evstore.core.errors import ArchiveError, ArchiveIntegrityError
from evstore.core.store.partitions import month_of, partition_name

from evstore import PostgreSQLEventStore

from .helpers import month_start, partition_names, populate, raw_rows


def test_archive_verify_restore_round_trip(database_url: str, target_url: str) -> None:
    with PostgreSQLEventStore(database_url) as store:
        # Given events in three old months and this month, some with compressed payloads
        store.settings = store.settings.model_copy(update={"compression": "zstd"})
        populate(store, [3, 2, 1, 0], streams=2, per_stream=12, big=True)
        original = raw_rows(store)
        assert any(r.payload is not None for r in original)  # a compressed payload is among them
        old_months = [partition_name(month_of(month_start(a))) for a in (3, 2)]
        policy = ArchivalPolicy(name="old", strategy="time_based", retention_days=45,
                                target_url=target_url, segment_size=10)
        now = month_start(0).replace(day=20)
        archiver = EventArchiver(store)

        # When the policy archives the months older than 45 days
        result = archiver.archive(policy, now=now)

        # Then whole months 3 and 2 ago went, as partitions detached and dropped
        archived = [r for r in original if r.created_at < month_start(1)]
        kept = [r for r in original if r.created_at >= month_start(1)]
        assert result.run.status == "completed"
        assert result.events == len(archived) == 48
        assert result.run.segment_count == 5
        assert sorted(result.run.dropped_partitions) == sorted(old_months)
        assert not set(old_months) & set(partition_names(store))
        assert raw_rows(store) == kept

        # and the archive verifies: run manifest, segment manifests, SHA-256, event checksums
        report = verify_archive(result.run.manifest_url)
        assert report.ok, report.problems
        assert (report.segments, report.events) == (5, 48)

        # When it is restored, twice
        first = restore_archive(store, result.run.manifest_url)
        second = restore_archive(store, result.run.manifest_url)

        # Then the store holds the original rows, byte for byte, once
        assert (first.events_restored, second.events_restored) == (48, 0)
        assert raw_rows(store) == original
        assert store.verify().ok


def test_one_segment_restores_alone_and_corruption_is_caught(
    database_url: str, target_url: str
) -> None:
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [2], streams=2, per_stream=10)
        original = raw_rows(store)
        policy = ArchivalPolicy(name="cnt", strategy="count_based", keep_events=0,
                                target_url=target_url, segment_size=8)
        result = EventArchiver(store).archive(policy)
        assert raw_rows(store) == []
        target = ArchiveTarget(target_url)
        run = result.run

        # A segment named by its data file restores just its events
        restored = restore_archive(store, target.url_of(run.data_path(2)))
        assert restored.events_restored == 8
        assert raw_rows(store) == original[8:16]

        # No temporary object is left behind by the verified writes
        assert not [p for p in target.fs.find(target.root) if ".tmp-" in p]

        # A flipped byte in a published segment is reported, and restore refuses it
        path = run.data_path(1)
        data = bytearray(target.read(path))
        data[len(data) // 2] ^= 0xFF
        target.fs.pipe_file(target.path(path), bytes(data))
        report = verify_archive(run.manifest_url)
        assert not report.ok
        assert any("SHA-256" in p for p in report.problems)
        with pytest.raises(ArchiveIntegrityError, match="SHA-256"):
            restore_archive(store, run.manifest_url)
        assert raw_rows(store) == original[8:16]


def test_missing_archive_is_a_clear_error(target_url: str) -> None:
    with pytest.raises(ArchiveError, match="no archive segments"):
        restore_archive(None, target_url + "/nothing-here")  # type: ignore[arg-type]
    assert not verify_archive(target_url + "/nothing-here").ok


def test_verified_writes_keep_every_byte(target_url: str) -> None:
    # (gcp-storage-emulator's multipart uploads drop a trailing CR: uploads
    # must not depend on how the last byte looks)
    target = ArchiveTarget(target_url)
    blobs = [b"\r", b"segment\r\n\r", bytes(range(256)) * 1200 + b"\r", b"\x00\n"]
    for i, data in enumerate(blobs):
        target.write_verified(f"bytes/{i}.bin", data)
        assert target.read(f"bytes/{i}.bin") == data
    assert target.find("bytes", ".bin") == [f"bytes/{i}.bin" for i in range(len(blobs))]
