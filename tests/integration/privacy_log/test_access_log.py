"""The access log: one entry per read that returns personal data, a hash chain that
verify-log checks (a changed, deleted or inserted row is caught: exit code 5)."""

from __future__ import annotations

import json
import uuid

import pytest
import typer
from evstore.core.privacy.access_log import verify_log
from typer.testing import CliRunner

from evstore.cli.privacy_records import add_commands

from .helpers import PROFILE, log_rows, open_store, order, profile, sql


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``evstore privacy ...`` in this process, on the test's database."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    group = typer.Typer()
    add_commands(group)
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(group, list(args))

    return run


def test_each_read_of_personal_data_writes_one_entry_with_the_declared_context(database_url: str) -> None:
    with open_store(database_url) as store:
        store.initialize_schema()
        store.append_events("user-a", [profile("a"), profile("a")])
        store.append_events("orders-a", [order("a")])
        store.append_events("user-b", [profile("b")])
        with store.access_context(accessor="alice", purpose="support", ip_address="10.1.2.3",
                                  user_agent="pytest/1"):
            assert len(store.read_stream("user-a")) == 2
            assert len(store.read_stream("orders-a")) == 1          # no personal data: no entry
            assert len(store.get_events_for_aggregate("b")) == 1
            page = store.read_all(limit=100)
            assert len(page.events) == 4
        assert store.read_stream("user-a", max_count=1)              # outside: the defaults
        assert store.read_stream("no-such-stream") == []
        store.flush_access_log()
        ids_a = [e.event_id for e in store.read_stream("orders-a")]
    rows = log_rows(database_url)
    assert [r["access_type"] for r in rows] == ["read_stream", "read_aggregate", "read_all",
                                                "read_stream"]
    first, aggregate, whole, default = rows
    assert (first["accessor"], first["purpose"], str(first["ip_address"]), first["user_agent"]) == (
        "alice", "support", "10.1.2.3", "pytest/1")
    assert first["subject_id"] == "a" and first["subject_ids"] == ["a"]
    assert len(first["event_ids"]) == 2 and first["event_id"] is None
    assert first["aggregate_id"] == "a"
    assert aggregate["subject_id"] == "b" and aggregate["event_id"] is not None
    assert sorted(whole["subject_ids"]) == ["a", "b"] and whole["subject_id"] is None
    assert len(whole["event_ids"]) == 3                              # the order is not personal
    assert not set(ids_a) & set(whole["event_ids"])
    assert default["purpose"] is None and default["accessor"]        # user@host
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert all(r["chain_hash"] for r in rows)


def test_buffered_entries_reach_the_table_within_the_flush_delay(database_url: str) -> None:
    with open_store(database_url, flush_ms=50) as store:
        store.initialize_schema()
        store.append_events("user-a", [profile("a")])
        for _ in range(5):
            store.read_stream("user-a")
        # written by the background thread, without a flush from us
        import time
        deadline = time.monotonic() + 10
        while len(log_rows(database_url)) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(log_rows(database_url)) == 5


def test_close_writes_what_is_buffered(database_url: str) -> None:
    with open_store(database_url, flush_ms=60_000) as store:
        store.initialize_schema()
        store.append_events("user-a", [profile("a")])
        store.read_stream("user-a")
        assert log_rows(database_url) == []
    assert len(log_rows(database_url)) == 1


def _fill(database_url: str, n: int = 5) -> None:
    with open_store(database_url, flush_ms=0) as store:
        store.initialize_schema()
        store.append_events("user-a", [profile("a")])
        for _ in range(n):
            store.read_stream("user-a")


def test_verify_log_passes_on_an_intact_chain(database_url: str, cli) -> None:  # type: ignore[no-untyped-def]
    _fill(database_url)
    with open_store(database_url) as store:
        report = verify_log(store)
    assert report.ok and report.checked == 5 and report.head_seq == 5
    result = cli("verify-log", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["checked"] == 5


@pytest.mark.parametrize("tamper", [
    "UPDATE events.event_access_log SET accessor = 'mallory' WHERE seq = 3",
    "UPDATE events.event_access_log SET accessed_at = accessed_at + interval '1 hour' WHERE seq = 2",
    "DELETE FROM events.event_access_log WHERE seq = 3",
    "DELETE FROM events.event_access_log WHERE seq = 5",
    "INSERT INTO events.event_access_log (accessor, access_type) VALUES ('mallory', 'read_stream')",
    "UPDATE events.event_access_log SET seq = seq + 10, chain_hash = 'x:y' WHERE seq = 5",
])
def test_tampering_with_one_row_is_caught(database_url: str, cli, tamper: str) -> None:  # type: ignore[no-untyped-def]
    _fill(database_url)
    sql(database_url, tamper)
    with open_store(database_url) as store:
        report = verify_log(store)
    assert not report.ok, tamper
    result = cli("verify-log")
    assert result.exit_code == 5, result.output
    assert "tampered" in result.output


def test_rows_logged_before_the_migration_are_adopted_into_the_chain(database_url: str) -> None:
    with open_store(database_url) as store:
        store.initialize_schema()
    sql(database_url, "INSERT INTO events.event_access_log (subject_id, accessor, access_type, purpose) "
                      "VALUES ('old', 'evstore', 'gdpr_anonymize', 'right to be forgotten')")
    _fill(database_url, 2)
    rows = log_rows(database_url)
    assert [(r["seq"], r["access_type"]) for r in rows] == [
        (1, "gdpr_anonymize"), (2, "read_stream"), (3, "read_stream")]
    with open_store(database_url) as store:
        assert verify_log(store).ok


def test_access_log_command_lists_a_subjects_entries(database_url: str, cli) -> None:  # type: ignore[no-untyped-def]
    _fill(database_url, 2)
    with open_store(database_url, flush_ms=0) as store:
        store.append_events("user-b", [profile("b")])
        with store.access_context(accessor="bob", purpose="audit"):
            store.read_all()
    result = cli("access-log", "a", "--json")
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert [e["access_type"] for e in entries] == ["read_stream", "read_stream", "read_all"]
    assert entries[-1]["accessor"] == "bob" and entries[-1]["purpose"] == "audit"
    assert json.loads(cli("access-log", "b", "--json").output)[0]["access_type"] == "read_all"
    table = cli("access-log", "a")
    assert table.exit_code == 0 and "bob" in table.output
    assert "no logged access" in cli("access-log", str(uuid.uuid4())).output


def test_log_off_writes_nothing(database_url: str) -> None:
    with open_store(database_url, flush_ms=0, access_log=False) as store:
        store.initialize_schema()
        store.append_events("user-a", [profile("a")])
        assert store.read_stream("user-a")[0].event_type == PROFILE
    assert log_rows(database_url) == []


def test_the_evstore_command_verifies_the_log(database_url: str) -> None:
    """``evstore privacy verify-log`` as a real process: 0 when intact, 5 once a row is changed."""
    import os

    from tests.acceptance.helpers import evstore

    _fill(database_url, 3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENT_STORE_")}
    env["DATABASE_URL"] = database_url
    ok = evstore(["privacy", "verify-log"], env)
    assert ok.returncode == 0, ok.stderr
    assert "3 entries chained" in ok.stdout
    sql(database_url, "UPDATE events.event_access_log SET purpose = 'edited' WHERE seq = 2")
    bad = evstore(["privacy", "verify-log"], env)
    assert bad.returncode == 5
    assert "row 2" in bad.stderr and "Traceback" not in bad.stderr


def test_consent_commands(database_url: str, cli) -> None:  # type: ignore[no-untyped-def]
    _fill(database_url, 1)
    assert cli("consent", "a", "marketing").exit_code == 0
    result = cli("consent", "a", "marketing", "--withdraw", "--note", "e-mail of 3 May")
    assert result.exit_code == 0 and "withdrawn" in result.output
    states = json.loads(cli("consents", "a", "--json").output)
    assert [(s["purpose"], s["granted"], s["note"]) for s in states] == [
        ("marketing", False, "e-mail of 3 May")]
    assert cli("consent", "a", "").exit_code == 2                  # a purpose is needed


def test_concurrent_writers_form_one_chain(database_url: str) -> None:
    """Two stores (two pools, as two processes would) and four threads write at once."""
    import threading

    _fill(database_url, 0)
    stores = [open_store(database_url, flush_ms=0), open_store(database_url, flush_ms=20)]
    try:
        def work(store) -> None:  # type: ignore[no-untyped-def]
            for _ in range(15):
                store.read_stream("user-a")

        threads = [threading.Thread(target=work, args=(stores[i % 2],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for s in stores:
            s.close()
    rows = log_rows(database_url)
    assert [r["seq"] for r in rows] == list(range(1, 61))
    with open_store(database_url) as store:
        report = verify_log(store)
    assert report.ok and report.checked == 60, report.problems
