"""Legal hold: a held subject's forget is refused (clear error, audit entry); a retention run
archives but does not drop a month partition holding a held subject's events and reports it
pinned; release lets both proceed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import typer
from evstore.core.archive import ArchivalPolicy, run_policy
from evstore.core.privacy import holds
from evstore.core.privacy.access_log import verify_log
from evstore.core.privacy.forget_job import run_here
from evstore.core.privacy.holds import LegalHoldError
from typer.testing import CliRunner

from evstore import EventMetadata, EventRecord
from evstore.cli.privacy_records import add_commands
from tests.integration.archive.helpers import month_start

from .helpers import PROFILE, log_rows, open_store, profile


def test_a_held_subject_cannot_be_forgotten_until_released(database_url: str) -> None:
    with open_store(database_url, flush_ms=0) as store:
        store.initialize_schema()
        store.append_events("user-h", [profile("h")])
        hold, created = holds.place(store, "h", "case 42: litigation", by="legal")
        assert created and hold.reason == "case 42: litigation"
        again, created = holds.place(store, "h", "other", by="legal")
        assert not created and again.hold_id == hold.hold_id
        with pytest.raises(LegalHoldError, match=r"under legal hold .*case 42.*forget refused"):
            run_here(store, "h", "dpo")
        assert store.read_stream("user-h")[0].event_data["email"] == "h@example.com"
        types = [(r["access_type"], r["subject_id"]) for r in log_rows(database_url)]
        assert ("forget_refused", "h") in types and ("legal_hold", "h") in types
        refused = next(r for r in log_rows(database_url) if r["access_type"] == "forget_refused")
        assert refused["details"]["reason"] == "case 42: litigation"
        holds.release(store, "h", by="legal")
        assert holds.hold_of(store, "h") is None
        with pytest.raises(LegalHoldError, match="not under legal hold"):
            holds.release(store, "h", by="legal")
        run_here(store, "h", "dpo")                          # proceeds now
        assert store.read_stream("user-h")[0].event_data["email"] != "h@example.com"
        assert verify_log(store).ok
        assert [r["access_type"] for r in log_rows(database_url)].count("legal_hold_release") == 1


def test_hold_commands(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("EVSTORE_ACCESSOR", "legal-team")
    with open_store(database_url) as store:
        store.initialize_schema()
    group = typer.Typer()
    add_commands(group)
    run = CliRunner().invoke
    assert run(group, ["hold", "s1"]).exit_code == 2              # --reason is required
    result = run(group, ["hold", "s1", "--reason", "case 7"])
    assert result.exit_code == 0 and "under legal hold" in result.output
    assert "already under legal hold" in run(group, ["hold", "s1", "--reason", "x"]).output
    listed = run(group, ["holds", "--json"])
    assert '"placed_by": "legal-team"' in listed.output and "case 7" in listed.output
    assert run(group, ["release", "s1"]).exit_code == 0
    result = run(group, ["release", "s1"])
    assert result.exit_code == 1 and "not under legal hold" in result.output


def _old_events(store, subject: str, months_ago: int) -> None:  # type: ignore[no-untyped-def]
    at = month_start(months_ago) + timedelta(days=2)
    store.append_events(f"user-{subject}", [
        EventRecord(subject, "User", PROFILE, {"email": f"{subject}@example.com"},
                    metadata=EventMetadata(user_id=subject), created_at=at + timedelta(minutes=i))
        for i in range(3)])


def test_retention_keeps_a_partition_holding_a_held_subjects_events(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVSTORE_ARCHIVE_TARGETS", str(tmp_path))
    with open_store(database_url, flush_ms=0) as store:
        store.initialize_schema()
        _old_events(store, "held", 3)
        _old_events(store, "free", 3)
        _old_events(store, "other", 4)
        holds.place(store, "held", "audit 2026", by="legal")
        policy = ArchivalPolicy(name="ret", strategy="time_based", retention_days=62,
                                target_url=f"file://{tmp_path}/archive")
        month3 = month_start(3).strftime("y%Ym%m")
        result = run_policy(store, policy)
        run = result.run
        assert run.status == "completed"
        assert any(month3 in p for p in run.partitions)
        assert not any(month3 in p for p in run.dropped_partitions)   # pinned
        assert any(month_start(4).strftime("y%Ym%m") in p for p in run.dropped_partitions)
        assert "pinned" in (run.last_error or "") and month3 in (run.last_error or "")
        assert len(store.read_stream("user-held")) == 3                # still in PostgreSQL
        holds.release(store, "held", by="legal")
        again = run_policy(store, policy).run
        assert any(month3 in p for p in again.dropped_partitions)
        assert not [p for p in store.list_partitions() if month3 in p.name]


def test_a_row_by_row_retention_keeps_a_held_subjects_events(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A count-based policy deletes row by row: it archives everyone's old events and
    deletes them, except a held subject's, which stay in PostgreSQL until the release."""
    monkeypatch.setenv("EVSTORE_ARCHIVE_TARGETS", str(tmp_path))
    with open_store(database_url, flush_ms=0) as store:
        store.initialize_schema()
        for subject in ("held", "free", "other"):
            _old_events(store, subject, 3)
        holds.place(store, "held", "audit 2026", by="legal")
        policy = ArchivalPolicy(name="keep1", strategy="count_based", keep_events=1,
                                target_url=f"file://{tmp_path}/archive")
        run = run_policy(store, policy).run
        assert run.status == "completed" and run.event_count == 6
        assert run.deleted_events == 4
        assert "legal hold" in (run.last_error or "") and "2 archived event(s)" in run.last_error
        assert len(store.read_stream("user-held")) == 3  # all three live (two archived too)
        assert [e.stream_position for e in store.read_stream("user-free")] == [1, 2, 3]  # read-through
        with store.connection() as conn:
            live = dict(conn.execute(f"SELECT stream_id, count(*) FROM {store.table('events')} "
                                     "GROUP BY stream_id").fetchall())
        assert live == {"user-held": 3, "user-free": 1, "user-other": 1}
        holds.release(store, "held", by="legal")
        again = run_policy(store, policy).run
        assert again.deleted_events == 2 and not again.last_error
        assert len(store.read_stream("user-held")) == 3  # read through the archive
