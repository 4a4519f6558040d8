"""An archive is trusted only when signed, and only as far as it must be (issue 17).

Signed manifests checked before anything they name is read; plain file names;
decompression capped by the recorded size; restores that never overwrite or
duplicate a stored position; targets allowed by configuration (storage options
matched at a path boundary); errors that carry ids, not event values; private
files on local targets; exact policy names.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from evstore.core.archive import (
    ArchivalPolicy,
    ArchiveTarget,
    export_segment,
    list_segments,
    plan_run,
    register_anonymizer,
    restore_archive,
    run_policy,
    verify_archive,
)
from evstore.core.archive.segments import (
    RunManifest,
    SegmentManifest,
    build_segment,
    line_checksum,
    row_to_line,
    sha256,
)
from evstore.core.config_file import STORAGE_ENV
from evstore.core.errors import ArchiveError, ArchiveIntegrityError, ConfigurationError
from psycopg.rows import dict_row

from evstore import EventMetadata, EventRecord, PostgreSQLEventStore

from .helpers import month_start, populate, raw_rows

NOW = month_start(0).replace(day=20)
ROOT = Path(__file__).resolve().parents[3]
ALLOW_ENV = "EVSTORE_ARCHIVE_TARGETS"  # the allowlist of archive targets

# Every column of an event, as segment_rows reads them (tests may hold SQL).
ROWS = (
    "SELECT event_id, aggregate_id, aggregate_type, event_type, event_version, "
    "aggregate_version, stream_id, stream_position, global_position, "
    "transaction_id::text::bigint AS transaction_id, event_data::text AS event_data, payload, "
    "metadata::text AS metadata, created_at, stored_at, status, compression, encryption, "
    "checksum, original_size, stored_size FROM {table} ORDER BY global_position"
)


def lines_of(store: PostgreSQLEventStore) -> list[dict[str, Any]]:
    with store.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        return [row_to_line(r) for r in cur.execute(ROWS.format(table=store.table("events")))]


def write_segment(folder: Path, lines: list[dict[str, Any]], number: int = 1,
                  **manifest_changes: Any) -> Path:
    """A segment built and signed the way an archive run does; the manifest's path."""
    data, manifest = build_segment("crafted", "crafted", number, lines, False)
    name = manifest.data_file
    for key, value in manifest_changes.items():
        setattr(manifest, key, value)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    path = folder / f"segment-{number:05d}.manifest.json"
    path.write_bytes(manifest.to_bytes())
    return path


def archived(store: PostgreSQLEventStore, url: str) -> Any:
    populate(store, [2], streams=2, per_stream=5)
    policy = ArchivalPolicy(name="sec", strategy="time_based", retention_days=30,
                            target_url=url, segment_size=4)
    return run_policy(store, policy, workers=1, now=NOW)


# 1. Signed manifests, checked before anything they name is read


def test_manifests_are_signed_and_a_changed_or_unsigned_one_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    url = f"file://{tmp_path}/archive"
    with PostgreSQLEventStore(database_url) as store:
        result = archived(store, url)
        original_count = len(raw_rows(store)) + result.events
        run_dir = tmp_path / "archive" / "sec" / result.run.run_id
        seg = run_dir / "segment-00001.manifest.json"
        run_json = run_dir / "run.json"
        assert json.loads(seg.read_text())["signature"]
        assert json.loads(run_json.read_text())["signature"]
        assert verify_archive(result.run.manifest_url).ok

        # A segment manifest changed after signing (and the run manifest's hash
        # of it updated too): refused on the signature, before its data is read
        body = json.loads(seg.read_text())
        body["data_file"] = "segment-09999.jsonl.zst"  # does not exist: reading it would say so
        seg.write_text(json.dumps(body))
        report = verify_archive(f"{url}/sec/{result.run.run_id}/segment-00001.manifest.json")
        assert not report.ok and "signature" in report.problems[0]
        assert "segment-09999" not in report.problems[0]
        with pytest.raises(ArchiveIntegrityError, match="signature"):
            restore_archive(store, str(seg))
        assert len(raw_rows(store)) == original_count - result.events

        # Unsigned (an archive written before manifests were signed): refused,
        # naming the way to accept it; accepted with trust_unsigned
        body = json.loads((run_dir / "segment-00002.manifest.json").read_text())
        del body["signature"]
        (run_dir / "segment-00002.manifest.json").write_text(json.dumps(body))
        one = f"{url}/sec/{result.run.run_id}/segment-00002.manifest.json"
        report = verify_archive(one)
        assert not report.ok and "not signed" in report.problems[0]
        assert "trust-unsigned" in report.problems[0]
        assert verify_archive(one, trust_unsigned=True).ok
        # but a wrong signature is never trusted
        body["signature"] = "00000000:" + "0" * 64
        (run_dir / "segment-00002.manifest.json").write_text(json.dumps(body))
        assert not verify_archive(one, trust_unsigned=True).ok

        # A run manifest whose signature fails names nothing that is read
        body = json.loads(run_json.read_text())
        body["segments"][0]["manifest"] = "elsewhere.manifest.json"
        run_json.write_text(json.dumps(body))
        with pytest.raises(ArchiveIntegrityError, match="signature"):
            restore_archive(store, result.run.manifest_url)
        assert len(raw_rows(store)) == original_count - result.events


# 2. File names in a manifest are plain names


@pytest.mark.parametrize("name", [
    "../../../../../etc/hostname", "a/b", "/etc/hostname", "..", "x\\y.jsonl.zst",
    "segment-00001.jsonl.zst\n",
])
def test_manifest_file_names_that_are_paths_are_refused_before_any_read(
    database_url: str, tmp_path: Path, name: str
) -> None:
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [1], streams=1, per_stream=2)
        lines = lines_of(store)
        # Signed with the store's key: only the name check can stop it
        path = write_segment(tmp_path / "crafted", lines, data_file=name)
        before = raw_rows(store)
        report = verify_archive(str(path))
        assert not report.ok and "plain file name" in report.problems[0], report.problems
        with pytest.raises(ArchiveIntegrityError, match="plain file name"):
            restore_archive(store, str(path))
        assert raw_rows(store) == before


def test_run_manifest_segment_names_that_are_paths_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    manifest = RunManifest(
        run_id=str(uuid.uuid4()), policy="p", strategy="time_based", event_count=1,
        segments=[{"number": 1, "manifest": "../../outside.manifest.json",
                   "manifest_sha256": "0" * 64}],
        partitions=[], policy_spec={}, created_at="2020-01-01T00:00:00+00:00",
    )
    (folder / "run.json").write_bytes(manifest.to_bytes())
    with pytest.raises(ArchiveIntegrityError, match="plain file name"):
        verify_archive(str(folder))


# 3. Decompression capped by the recorded size


# The command, run in a fresh interpreter that writes its own peak RSS (VmHWM of
# /proc/self/status, which unlike ru_maxrss does not count the forking parent).
MEASURED = """
import atexit, runpy, sys
out = sys.argv.pop(1)
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(out, "w").write(line.split()[1])
atexit.register(peak)
sys.argv[0] = "evstore"
runpy.run_module("evstore.cli", run_name="__main__")
"""


def run_measured(args: list[str], tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """``evstore ARGS`` as a real process; (the completed process, its peak RSS in bytes)."""
    out = tmp_path / "peak-kib"
    proc = subprocess.run([sys.executable, "-c", MEASURED, str(out), *args], cwd=ROOT,
                          env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True,
                          timeout=300)
    return proc, int(out.read_text()) * 1024


def test_a_decompression_bomb_is_refused_without_allocating_it(tmp_path: Path) -> None:
    bomb_size = 256 * 1024 * 1024
    compressor = zstandard.ZstdCompressor(level=19).compressobj(size=bomb_size)
    chunk = b" " * (1 << 20)
    data = b"".join(compressor.compress(chunk) for _ in range(bomb_size // len(chunk)))
    data += compressor.flush()
    assert len(data) < 64 * 1024
    folder = tmp_path / "bomb"
    folder.mkdir()
    (folder / "segment-00001.jsonl.zst").write_bytes(data)
    manifest = SegmentManifest(
        run_id="bomb", policy="bomb", number=1, event_count=1,
        data_file="segment-00001.jsonl.zst", sha256=sha256(data), stored_bytes=len(data),
        raw_bytes=100, first_position="1:1", last_position="1:1", min_global_position=1,
        max_global_position=1, min_created_at="2020-01-01T00:00:00+00:00",
        max_created_at="2020-01-01T00:00:00+00:00", streams=1,
    )
    path = folder / "segment-00001.manifest.json"
    path.write_bytes(manifest.to_bytes())  # signed with the store's key

    # Through the real command, measuring its own peak memory
    proc, peak = run_measured(["archive", "verify", str(path)], tmp_path)
    assert proc.returncode == 5, proc.stderr
    assert "more than the 100 bytes" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert peak < bomb_size * 0.5, f"peak RSS {peak / 2**20:.0f} MiB"


# 4. Restore refuses events that conflict with stored positions


def test_restore_refuses_a_forged_event_at_a_stored_position(
    database_url: str, tmp_path: Path
) -> None:
    with PostgreSQLEventStore(database_url) as store:
        store.append_events("user-1", [
            EventRecord(aggregate_id="user-1", aggregate_type="User", event_type="UserRegistered",
                        event_data={"email": "ada@example.com"},
                        metadata=EventMetadata(user_id="user-1")),
            EventRecord(aggregate_id="user-1", aggregate_type="User", event_type="EmailChanged",
                        event_data={"email": "ada@new.example.com"},
                        metadata=EventMetadata(user_id="user-1")),
        ])
        before = raw_rows(store)
        genuine = lines_of(store)

        # A forged EmailChanged at position 1 of user-1, with a new id, a valid
        # checksum and a signed manifest: only the position check stands in its way
        forged = dict(genuine[0], event_id=str(uuid.uuid4()), event_type="EmailChanged",
                      event_data=json.dumps({"email": "mallory@evil.example"}),
                      global_position=genuine[-1]["global_position"] + 1000)
        forged["checksum"] = line_checksum(forged)
        path = write_segment(tmp_path / "forged", [forged])
        assert verify_archive(str(path)).ok  # the archive itself is sound
        with pytest.raises(ArchiveIntegrityError, match=r"stream 'user-1' position 1\b"):
            restore_archive(store, str(path))
        assert raw_rows(store) == before

        # A stored event id brought back at another place is refused too
        moved = dict(genuine[1], stream_id="user-2", aggregate_id="user-2",
                     stream_position=1, global_position=genuine[-1]["global_position"] + 2000)
        moved["checksum"] = line_checksum(moved)
        path = write_segment(tmp_path / "moved", [moved])
        with pytest.raises(ArchiveIntegrityError, match=genuine[1]["event_id"]):
            restore_archive(store, str(path))
        assert raw_rows(store) == before

        # Nothing of a folder is written when one of its segments conflicts
        fresh = dict(genuine[0], event_id=str(uuid.uuid4()), stream_id="user-3",
                     aggregate_id="user-3", global_position=genuine[-1]["global_position"] + 3000)
        fresh["checksum"] = line_checksum(fresh)
        write_segment(tmp_path / "both", [fresh], number=1)
        write_segment(tmp_path / "both", [forged], number=2)
        with pytest.raises(ArchiveIntegrityError, match="user-1"):
            restore_archive(store, str(tmp_path / "both"))
        assert raw_rows(store) == before

        # The same events restored again are no conflict (restore stays idempotent)
        write_segment(tmp_path / "same", genuine)
        again = restore_archive(store, str(tmp_path / "same"))
        assert (again.events_restored, again.events_already_present) == (0, 2)
        assert raw_rows(store) == before


# 5. Targets allowed by configuration; storage options at a path boundary


@pytest.fixture
def allow_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    allowed = tmp_path / "cold"
    monkeypatch.setenv(ALLOW_ENV, f"file://{allowed}")
    monkeypatch.setenv("EVSTORE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EVSTORE_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    yield allowed


def test_target_allowlist_matches_at_a_path_boundary(allow_only: Path, tmp_path: Path) -> None:
    ArchiveTarget(f"file://{allow_only}")
    ArchiveTarget(f"file://{allow_only}/events/run")
    ArchiveTarget(str(allow_only / "plain-path"))
    ArchiveTarget(f"file://{tmp_path}/home/archive/x")  # the default: $EVSTORE_HOME/archive
    for url in (f"file://{allow_only}-evil", f"file://{allow_only}/../evil", f"{tmp_path}/other",
                f"file://{tmp_path}/home/secret.key", "s3://cold"):
        with pytest.raises(ConfigurationError, match="not an allowed archive target"):
            ArchiveTarget(url)


def test_policy_targets_of_the_configuration_file_are_allowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "evstore.toml"
    config.write_text(f'[archive]\ntargets = ["s3://listed"]\n'
                      f'[archive.policies.p]\nstrategy = "count_based"\nkeep_events = 1\n'
                      f'target = "file://{tmp_path}/policy-target"\n')
    monkeypatch.setenv("EVSTORE_CONFIG", str(config))
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    ArchiveTarget(f"file://{tmp_path}/policy-target/p/run")
    ArchiveTarget("s3://listed/x")
    with pytest.raises(ConfigurationError, match="not an allowed archive target"):
        ArchiveTarget(f"file://{tmp_path}/policy-target-2")


def test_a_run_restore_or_row_naming_a_target_not_allowed_uploads_nothing(
    database_url: str, allow_only: Path, tmp_path: Path
) -> None:
    evil = tmp_path / "evil"
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [2], streams=2, per_stream=3)
        original = raw_rows(store)
        bad = ArchivalPolicy(name="bad", strategy="count_based", keep_events=0,
                             target_url=f"file://{evil}")
        with pytest.raises(ConfigurationError, match="not an allowed archive target"):
            run_policy(store, bad, workers=1, now=NOW)

        # A run row rewritten to point elsewhere (what a worker would read)
        good = ArchivalPolicy(name="good", strategy="count_based", keep_events=0,
                              target_url=f"file://{allow_only}")
        run, _ = plan_run(store, good, now=NOW)
        with store.connection() as conn:
            conn.execute(f"UPDATE {store.table('archive_runs')} SET target_url = %s",
                         [f"file://{evil}"])
        with pytest.raises(ConfigurationError, match="not an allowed archive target"):
            export_segment(store, run.run_id, 1)
        with pytest.raises(ConfigurationError, match="not an allowed archive target"):
            restore_archive(store, f"file://{evil}/x")
        assert not evil.exists()
        assert raw_rows(store) == original
        assert all(s.status == "pending" for s in list_segments(store, run.run_id))


def test_storage_options_apply_at_a_path_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_ENV, "s3://cold-bucket,s3://cold-bucket-evil")
    monkeypatch.setenv(STORAGE_ENV, json.dumps({
        "s3": {"key": "k"},
        "s3://cold-bucket": {"endpoint_url": "http://cold"},
    }))
    assert ArchiveTarget("s3://cold-bucket/events").options == {
        "key": "k", "endpoint_url": "http://cold"}
    assert ArchiveTarget("s3://cold-bucket").options["endpoint_url"] == "http://cold"
    assert ArchiveTarget("s3://cold-bucket-evil/events").options == {"key": "k"}


# 6. Errors carry ids and the exception type, not event values


def test_segment_errors_keep_ids_and_type_not_event_values(
    database_url: str, tmp_path: Path
) -> None:
    def leaky(data: dict[str, Any], metadata: dict[str, Any]) -> Any:
        raise ValueError(f"cannot anonymize {data['email']}")

    register_anonymizer("leaky-test", leaky)
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [2], streams=1, per_stream=2)
        policy = ArchivalPolicy(name="leak", strategy="gdpr_based", retention_days=1,
                                target_url=f"file://{tmp_path}/archive", anonymizer="leaky-test")
        with pytest.raises(ArchiveError) as caught:
            run_policy(store, policy, workers=1, now=NOW)
        assert "@example.com" not in str(caught.value)
        assert "ValueError" in str(caught.value)
        with store.connection() as conn:
            (seg_error, run_id) = conn.execute(
                f"SELECT last_error, run_id::text FROM {store.table('archive_segments')}"
            ).fetchone()
            (run_error,) = conn.execute(
                f"SELECT last_error FROM {store.table('archive_runs')}").fetchone()
        for stored in (seg_error, run_error):
            assert "@example.com" not in stored
            assert "ValueError" in stored
        assert run_id in seg_error and "segment 1" in seg_error


# 7. Local targets are private


def test_file_target_folders_are_0700_and_files_0600(database_url: str, tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        with PostgreSQLEventStore(database_url) as store:
            archived(store, f"file://{tmp_path}/archive")
    finally:
        os.umask(previous)
    root = tmp_path / "archive"
    found = [root, *root.rglob("*")]
    assert len(found) > 4
    for path in found:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


# 8. Policy names match whole


def test_a_policy_name_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="the name must be"):
        ArchivalPolicy(name="nightly\n", strategy="count_based", keep_events=1,
                       target_url=f"file://{tmp_path}")
