"""Subject export: what the file holds equals what the store holds about the subject (live and
archived events, snapshots, access-log entries), each section checked against the manifest."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from evstore.core.archive import ArchivalPolicy, run_policy
from evstore.core.privacy.export import check_export, export_subject, section_digest
from evstore.core.snapshots.store import SnapshotStore
from typer.testing import CliRunner

from evstore import EventMetadata, EventRecord
from evstore.cli.privacy_records import add_commands
from tests.integration.archive.helpers import month_start

from .helpers import PROFILE, log_rows, open_store, order, profile
from .test_delivery import Person


def test_export_round_trip(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVSTORE_ARCHIVE_TARGETS", str(tmp_path))
    monkeypatch.setenv("EVSTORE_ARCHIVE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "x.json"
    with open_store(database_url, flush_ms=0) as store:
        store.initialize_schema()
        old = month_start(3) + timedelta(days=2)
        store.append_events("legacy-x", [EventRecord(
            "x", "LegacyUser", PROFILE, {"email": "old-x@example.com", "name": "X"},
            metadata=EventMetadata(user_id="x"), created_at=old)])
        store.append_events("legacy-y", [EventRecord(
            "y", "LegacyUser", PROFILE, {"email": "old-y@example.com"},
            metadata=EventMetadata(user_id="y"), created_at=old)])
        run = run_policy(store, ArchivalPolicy(name="old", strategy="time_based", retention_days=62,
                                               target_url=f"file://{tmp_path}/archive")).run
        assert run.deleted_events == 2
        store.append_events("user-x", [profile("x"), profile("x", "new-x@example.com")])
        store.append_events("orders-x", [order("x")])
        store.append_events("orders-y", [order("y")])
        store.append_events("user-y", [profile("y")])
        SnapshotStore(store).create_snapshot(Person, "x")
        with store.access_context(accessor="support", purpose="ticket 9"):
            live = store.read_stream("user-x")
        before = [r for r in log_rows(database_url) if "x" in r["subject_ids"]]

        with store.access_context(accessor="dpo"):
            result = export_subject(store, "x", out)

    body = check_export(out)                                  # every section matches its manifest
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert body["subject"] == "x" and body["exported_by"] == "dpo"
    assert result.counts == {"events": 3, "archived_events": 1, "snapshots": 1,
                             "access_log": len(before)}
    by_id = {e["event_id"]: e for e in body["events"]}
    for event in live:                                        # decoded (and decrypted) as read
        assert by_id[str(event.event_id)]["data"] == event.event_data
    assert {e["stream_id"] for e in body["events"]} == {"user-x", "orders-x"}
    assert all(e["metadata"]["user_id"] == "x" for e in body["events"])
    assert body["archived_events"][0]["data"]["email"] == "old-x@example.com"
    assert body["snapshots"][0]["state"] == {"email": "new-x@example.com"}
    assert [e["access_id"] for e in body["access_log"]] == [str(r["access_id"]) for r in before]
    assert "old-y" not in out.read_text() and "y@example.com" not in out.read_text()
    # the export is one access of its own, listing what it returned
    last = log_rows(database_url)[-1]
    assert (last["access_type"], last["accessor"], last["subject_id"]) == ("export", "dpo", "x")
    assert len(last["event_ids"]) == 4
    # a changed section no longer matches
    body["events"][0]["data"]["email"] = "forged@example.com"
    assert section_digest(body["events"]) != body["manifest"]["events"]["sha256"]
    tampered = tmp_path / "t.json"
    tampered.write_text(json.dumps(body))
    with pytest.raises(ValueError, match="does not match its manifest"):
        check_export(tampered)


def test_export_command(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    with open_store(database_url) as store:
        store.initialize_schema()
        store.append_events("user-z", [profile("z")])
    group = typer.Typer()
    add_commands(group)
    out = tmp_path / "z.json"
    result = CliRunner().invoke(group, ["export", "z", "--out", str(out), "--no-archive"])
    assert result.exit_code == 0, result.output
    assert "1 events" in result.output
    assert check_export(out)["events"][0]["data"]["email"] == "z@example.com"
