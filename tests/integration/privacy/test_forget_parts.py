"""Forget's parts: snapshots, an interrupted archive rewrite, master-key rotation, the audit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import zstandard
from evstore.core.archive import ArchivalPolicy, EventArchiver, verify_archive
from evstore.core.archive.rows import parse_segment
from evstore.core.archive.segments import FIELDS, build_segment
from evstore.core.archive.targets import ArchiveTarget
from evstore.core.privacy.admin import audit, rotate_master_key
from evstore.core.privacy.crypto import FORGOTTEN
from evstore.core.privacy.forget import plan_steps, run_step
from evstore.core.privacy.gdpr import cleanup_gdpr_data
from evstore.core.snapshots.aggregate import Aggregate
from evstore.core.snapshots.store import SnapshotStore

from evstore import EventRecord

from .conftest import MASTER, open_store
from .test_encryption_forget import registered


class User(Aggregate):
    aggregate_type = "User"
    state_schema = 1

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.email = ""
        self.plan = ""

    def apply(self, event: EventRecord) -> None:
        self.email = event.event_data.get("email", self.email)
        self.plan = event.event_data.get("plan", self.plan)

    def save(self) -> dict[str, Any]:
        return {"email": self.email, "plan": self.plan}

    def restore(self, state: dict[str, Any]) -> None:
        self.email, self.plan = state["email"], state["plan"]


def test_snapshots_embedding_the_subject_are_dropped_and_the_aggregate_still_loads(
        encrypted_store: Any) -> None:
    store = encrypted_store
    snaps = SnapshotStore(store)
    for user in ("a1", "a2"):
        store.append_events(f"User-{user}", [registered(user)])
        assert snaps.create_snapshot(User, user) is not None
    result = cleanup_gdpr_data(store, "a1")
    assert result.snapshots_rewritten == 1
    assert snaps.latest(User, "a1") is None and snaps.latest(User, "a2") is not None
    user, version = snaps.load_aggregate_with_events(User, "a1")
    assert (user.email, user.plan, version) == (FORGOTTEN, "pro", 1)
    assert snaps.load_aggregate_with_events(User, "a2")[0].email == "a2-mail-canary@example.com"


def test_a_rewrite_interrupted_between_data_and_manifest_completes(
        database_url: str, privacy_config: Path, tmp_path: Path) -> None:
    url = f"file://{tmp_path}/archive"
    with open_store(database_url, encryption="off") as store:
        for user in ("b1", "b2"):
            store.append_events(f"User-{user}", [registered(user)])
        EventArchiver(store).archive(ArchivalPolicy(name="all", strategy="count_based",
                                                    keep_events=0, target_url=url))
        # a forget killed after writing the new segment data, before its manifest
        target = ArchiveTarget(url)
        [data_path] = [p for p in target.fs.find(target.root) if p.endswith(".tsv.zst")]
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(Path(data_path).read_bytes())
        lines = parse_segment(raw, FIELDS, data_path)
        from evstore.core.keys import keyring
        from evstore.core.privacy.archive_forget import _anonymized_line
        from evstore.core.privacy.declarations import registry_for

        lines = [_anonymized_line(ln, registry_for(None), {"b1"}, keyring(store.settings)) or ln
                 for ln in lines]
        Path(data_path).write_bytes(build_segment("r", "all", 1, lines, False)[0])
        assert not verify_archive(url).ok
        # when the forget runs again, the archive verifies and holds no b1 canary
        result = cleanup_gdpr_data(store, "b1")
        assert result.archive_segments_rewritten == 1
        assert verify_archive(url).ok
        text = zstandard.ZstdDecompressor().decompressobj().decompress(
            Path(data_path).read_bytes()).decode()
        assert "b1-mail-canary" not in text and "b2-mail-canary" in text
        # and every step is idempotent
        for step in plan_steps(store, "b1"):
            with store.db.connection() as conn, conn.transaction():
                counts = run_step(store, conn, "b1", step)
            assert not any(counts.get(k) for k in ("events_anonymized", "archive_segments_rewritten"))


def test_rotate_master_key_rewraps_keys_only(database_url: str, privacy_config: Path) -> None:
    with open_store(database_url) as store:
        for user in ("c1", "c2", "c3"):
            store.append_events(f"User-{user}", [registered(user)])
        with store.db.connection() as conn:
            events_before = conn.execute("SELECT event_data::text, checksum FROM events.events").fetchall()
    new = "22" * 32
    with open_store(database_url, master_key=new, previous_master_keys=MASTER) as store:
        assert rotate_master_key(store) == (3, 3)
        assert rotate_master_key(store) == (0, 3)
        with store.db.connection() as conn:
            assert conn.execute("SELECT event_data::text, checksum FROM events.events").fetchall() \
                == events_before
    from evstore.core.config import load_settings

    from evstore import PostgreSQLEventStore

    settings = load_settings(database_url=database_url, encryption="on", master_key=new)
    with PostgreSQLEventStore(database_url, settings=settings) as store:  # the old key is gone
        assert store.read_stream("User-c2")[0].event_data["email"] == "c2-mail-canary@example.com"


def test_audit_lists_undeclared_types_and_personal_looking_fields(
        encrypted_store: Any, database_url: str, privacy_config: Path) -> None:
    store = encrypted_store
    store.append_events("User-d1", [registered("d1")])
    store.append_events("Shop-1", [EventRecord("1", "Shop", "ShopOpened", {
        "owner_email": "x@example.com", "contact": "+33 6 12 34 56 78", "size": 3})])
    report = audit(store)
    assert "ShopOpened" in report.undeclared_types and "UserRegistered" not in report.undeclared_types
    flagged = {(t, f) for t, f, _ in report.warnings}
    assert ("ShopOpened", "data.owner_email") in flagged and ("ShopOpened", "data.contact") in flagged
    # declared fields are not flagged; an undeclared one that looks personal is
    assert {f for t, f in flagged if t == "UserRegistered"} == {"data.addresses[].city"}
    out = subprocess.run([str(Path(__file__).parents[3] / ".venv/bin/evstore"), "privacy", "audit",
                          "--json"], env={**__import__("os").environ, "DATABASE_URL": database_url},
                         capture_output=True, text=True, check=True).stdout
    assert "data.owner_email" in out


def test_a_target_down_fails_the_archive_batch_and_a_requeue_completes(
        database_url: str, privacy_config: Path, tmp_path: Path) -> None:
    import pytest
    from evstore.core.errors import JobError
    from evstore.core.jobs.repository import JobRepository
    from evstore.core.privacy.forget_job import resume_here

    folder = tmp_path / "archive"
    with open_store(database_url, encryption="off") as store:
        for user in ("t1", "t2"):
            store.append_events(f"User-{user}", [registered(user)])
        EventArchiver(store).archive(ArchivalPolicy(name="all", strategy="count_based",
                                                    keep_events=0, target_url=folder.as_uri()))
        away = tmp_path / "unmounted"
        folder.rename(away)  # the target is down (its volume gone)
        with pytest.raises(JobError, match="failed at batch"):
            cleanup_gdpr_data(store, "t1")
        [job] = JobRepository(store).list_jobs(kind="forget")
        assert job.status in ("running", "failed") and job.batches_failed == 1
        away.rename(folder)  # back: nothing was lost
        assert verify_archive(folder.as_uri()).ok
        result = resume_here(store, job.job_id)
        assert result.archive_segments_rewritten == 1 and result.keys_destroyed == 0
        assert JobRepository(store).get(job.job_id).status == "succeeded"
        text = zstandard.ZstdDecompressor().decompressobj().decompress(
            next(folder.rglob("*.tsv.zst")).read_bytes()).decode()
        assert "t1-mail-canary" not in text and "t2-mail-canary" in text
        assert verify_archive(folder.as_uri()).ok


def test_cli_forget_here_and_forgets(database_url: str, privacy_config: Path) -> None:
    import os

    with open_store(database_url) as store:
        store.append_events("User-erin", [registered("erin")])
    evstore = str(Path(__file__).parents[3] / ".venv/bin/evstore")
    env = {**os.environ, "DATABASE_URL": database_url, "EVENT_STORE_ENCRYPTION": "on",
           "EVENT_STORE_MASTER_KEY": MASTER}
    done = subprocess.run([evstore, "privacy", "forget", "erin", "--here", "--json"], env=env,
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert result["keys_destroyed"] == 1 and result["job_id"] is not None
    listed = subprocess.run([evstore, "privacy", "forgets", "--json"], env=env,
                            capture_output=True, text=True, check=True)
    [row] = json.loads(listed.stdout)
    assert row["counts"]["keys_destroyed"] == 1 and "erin" not in listed.stdout
    bad = subprocess.run([evstore, "privacy", "forget", " ", "--here"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "subject id" in bad.stderr and "Traceback" not in bad.stderr


def test_another_process_drops_its_cached_pre_forget_segment_when_it_next_reads(
        database_url: str, privacy_config: Path, tmp_path: Path, monkeypatch: Any) -> None:
    """Read-through caches on one machine; a forget runs on another (its own cache): the
    first machine's copy of the old segment is dropped on its next read-through."""
    from evstore.core.archive import readthrough

    monkeypatch.setattr(readthrough, "_PRUNE_EVERY", 0.0, raising=False)
    folder = tmp_path / "archive"
    with open_store(database_url, encryption="off", archive_cache_dir=tmp_path / "cache-a") as a, \
            open_store(database_url, encryption="off", archive_cache_dir=tmp_path / "cache-b") as b:
        for user in ("c1", "c2"):
            a.append_events(f"User-{user}", [registered(user)])
        EventArchiver(a).archive(ArchivalPolicy(name="all", strategy="count_based",
                                                keep_events=0, target_url=folder.as_uri()))
        readthrough._parsed.clear()
        assert a.read_stream("User-c1")[0].event_data["email"] == "c1-mail-canary@example.com"

        def cached_text(name: str) -> str:
            return "".join(zstandard.ZstdDecompressor().decompressobj().decompress(p.read_bytes())
                           .decode() for p in (tmp_path / name).glob("*.zst"))

        assert "c1-mail-canary" in cached_text("cache-a")
        assert cleanup_gdpr_data(b, "c1").archive_segments_rewritten == 1
        assert "c1-mail-canary" in cached_text("cache-a")  # not reachable from b's process
        assert a.read_stream("User-c2")[0].event_data["email"] == "c2-mail-canary@example.com"
        assert "c1-mail-canary" not in cached_text("cache-a")
        assert "c2-mail-canary" in cached_text("cache-a")  # the new segment, fetched again
        assert not any("c1-mail-canary" in json.dumps(lines) for lines in readthrough._parsed.values())
        assert "c1-mail-canary" not in json.dumps(a.read_stream("User-c1")[0].event_data)
