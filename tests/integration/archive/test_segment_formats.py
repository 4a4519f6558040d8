"""Segments of format 1 (JSON lines, written before format 2) stay readable everywhere:
read-through, verify and restore, beside segments of format 2 in the same run."""

from __future__ import annotations

from pathlib import Path

from evstore.core.archive import (
    ArchivalPolicy,
    list_segments,
    readthrough,
    restore_archive,
    run_policy,
    verify_archive,
)
from evstore.core.archive.rows import FORMAT_V1, FORMAT_V2, line_of_row, row_of_line
from evstore.core.archive.segments import SegmentManifest, build_segment, read_segment, sha256
from evstore.core.archive.targets import ArchiveTarget

from evstore import PostgreSQLEventStore

from .helpers import count, populate
from .test_read_through import NOW, fingerprint, reset_caches


def test_a_format_1_segment_reads_verifies_and_restores_beside_format_2(
        database_url: str, tmp_path: Path) -> None:
    url = f"file://{tmp_path}/archive"
    with PostgreSQLEventStore(database_url) as store:
        reset_caches(store, tmp_path / "cache")
        populate(store, [3, 2], streams=3, per_stream=6, prefix="old")
        streams = [f"old-{m}-{s}" for m in (3, 2) for s in range(3)]
        before = {sid: fingerprint(store.read_stream(sid)) for sid in streams}
        result = run_policy(store, ArchivalPolicy(name="old", strategy="time_based",
                                                  retention_days=45, target_url=url,
                                                  segment_size=10), now=NOW)
        assert count(store) == 0
        run = result.run
        segments = list_segments(store, run.run_id)
        assert len(segments) >= 2
        target = ArchiveTarget(url)

        # As an archive of the previous version left it: segment 1 rewritten in format 1
        # (JSON lines, .jsonl.zst), the database's record of it to match
        seg = segments[0]
        manifest_path = run.manifest_path(seg.number)
        old_manifest = SegmentManifest.from_bytes(target.read(manifest_path), manifest_path)
        assert old_manifest.format == FORMAT_V2
        lines = list(read_segment(target.read(seg.data_path), old_manifest, seg.data_path))
        data, manifest = build_segment(run.run_id, run.policy, seg.number, lines, False, FORMAT_V1)
        assert manifest.data_file.endswith(".jsonl.zst") and data != target.read(seg.data_path)
        v1_path = seg.data_path.replace(".tsv.zst", ".jsonl.zst")
        target.write_verified(v1_path, data)
        target.write_verified(manifest_path, manifest.to_bytes())
        target.fs.rm(target.path(seg.data_path))
        with store.connection() as conn:
            conn.execute(f"UPDATE {store.table('archive_segments')} SET data_path = %s, sha256 = %s, "
                         "raw_bytes = %s, stored_bytes = %s WHERE run_id = %s AND segment_no = %s",
                         (v1_path, manifest.sha256, manifest.raw_bytes, manifest.stored_bytes,
                          run.run_id, seg.number))
        readthrough._parsed.clear()

        # Then every stream reads through both formats as before
        for sid in streams:
            assert fingerprint(store.read_stream(sid)) == before[sid], sid
        # and each segment verifies and restores, whatever its format
        folder = f"{url}/{run.folder}"
        assert verify_archive(f"{folder}/{manifest_path.rpartition('/')[2]}").ok
        assert verify_archive(f"{folder}/{segments[1].manifest_path.rpartition('/')[2]}").ok
        restored = restore_archive(store, f"{url}/{v1_path}")
        assert restored.events_restored == seg.event_count
        restored = restore_archive(store, f"{url}/{segments[1].data_path}")
        assert restored.events_restored == segments[1].event_count
        assert count(store) == seg.event_count + segments[1].event_count


def test_a_line_survives_format_2_whatever_its_characters() -> None:
    line = {"event_id": "0f0e0d0c-0b0a-0908-0706-050403020100", "aggregate_id": "a\tb\\c\nd\re",
            "aggregate_type": "\\N", "event_type": "E ☃", "event_version": 1,
            "aggregate_version": 3, "stream_id": "s\\t", "stream_position": 3,
            "global_position": 9, "transaction_id": 77, "event_data": None,
            "payload": "AAEC/w==", "metadata": '{"k": "v\\\\ \\t"}',
            "created_at": "2026-01-02T03:04:05.000006+00:00",
            "stored_at": "2026-01-02T03:04:05.000007+00:00", "status": None,
            "compression": "zstd", "encryption": "none", "checksum": "2:abcd:ef",
            "original_size": 4, "stored_size": None}
    text = row_of_line(line)
    assert "\n" not in text and text.count("\t") == 20
    assert line_of_row(text) == line
    assert sha256(text.encode()) == sha256(row_of_line(line_of_row(text)).encode())
