"""Per-subject encryption and forgetting, in one process against real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from evstore.core.archive import cleanup_gdpr_data
from evstore.core.privacy.crypto import FORGOTTEN, Forgotten, find_events

from evstore import EventMetadata, EventRecord
from tests.pgtools import pg_dump

from .conftest import open_store


def registered(user: str, aggregate_type: str = "User") -> EventRecord:
    return EventRecord(user, aggregate_type, "UserRegistered", {
        "email": f"{user}-mail-canary@example.com", "name": f"{user}-name-canary",
        "addresses": [{"street": f"{user}-street-canary", "city": "Paris"}], "plan": "pro"})


def viewed(user: str) -> EventRecord:
    return EventRecord(f"page-{user}", "Page", "PageViewed", {"referrer": f"{user}-ref-canary", "n": 1},
                       metadata=EventMetadata(user_id=user, extra={"ip_address": f"{user}-ip-canary"}))


def dump(url: str) -> str:
    return pg_dump(url, "--data-only")


def test_encrypted_at_rest_read_back_and_found_by_blind_index(encrypted_store, database_url) -> None:
    store = encrypted_store
    store.append_events("User-u1", [registered("u1")])
    store.append_events("Page-u1", [viewed("u1")])
    [event] = store.read_stream("User-u1")
    assert event.event_data["email"] == "u1-mail-canary@example.com"
    assert event.event_data["addresses"] == [{"street": "u1-street-canary", "city": "Paris"}]
    [view] = store.read_stream("Page-u1")
    assert view.metadata.extra["ip_address"] == "u1-ip-canary" and view.metadata.user_id == "u1"
    text = dump(database_url)
    assert "canary" not in text and "Paris" in text  # undeclared fields stay plain (queryable)
    found = find_events(store, "UserRegistered", "data.email", "u1-mail-canary@example.com")
    assert [e.event_id for e in found] == [event.event_id]
    assert find_events(store, "UserRegistered", "data.email", "nobody@example.com") == []
    assert store.verify().ok


def test_forget_shreds_anonymizes_and_keeps_others(database_url, privacy_config) -> None:
    with open_store(database_url, encryption="off") as plain:
        plain.append_events("User-old", [registered("old")])  # before encryption was on
        # an Order with the same id is not the subject (the subject is a User's aggregate id)
        plain.append_events("Order-old", [EventRecord("old", "Order", "UserRegistered",
                                                      {"email": "order-kept@example.com"})])
    with open_store(database_url) as store:
        store.append_events("User-old", [EventRecord("old", "User", "UserRegistered",
                                                     {"email": "old-new-canary@example.com"})])
        for user in ("u1", "u2"):
            store.append_events(f"User-{user}", [registered(user)])
            store.append_events(f"Page-{user}", [viewed(user)])
        before = {s: store.read_stream(s) for s in ("User-u2", "Page-u2", "Order-old")}

        result = cleanup_gdpr_data(store, "old")
        assert (result.keys_destroyed, result.events_anonymized, result.events_crypto_shredded) == (1, 1, 1)
        result = cleanup_gdpr_data(store, "u1")
        assert (result.keys_destroyed, result.events_anonymized, result.events_crypto_shredded) == (1, 0, 2)
        assert result.blind_index_entries_removed > 0

        text = dump(database_url)
        for user in ("old", "u1"):
            assert f"{user}-mail-canary" not in text and f"{user}-ip-canary" not in text
        assert "old-new-canary" not in text and "order-kept@example.com" in text
        old = store.read_stream("User-old")
        assert len(old) == 2 and old[0].event_data["email"] == FORGOTTEN
        assert isinstance(old[1].event_data["email"], Forgotten)
        [page] = store.read_stream("Page-u1")
        assert page.metadata.extra["ip_address"] == FORGOTTEN and page.event_data["n"] == 1
        assert {s: store.read_stream(s) for s in before} == before  # others, and Order-old, intact
        assert store.verify().ok
        assert find_events(store, "UserRegistered", "data.email", "u1-mail-canary@example.com") == []

        again = cleanup_gdpr_data(store, "u1")  # idempotent
        assert (again.keys_destroyed, again.events_anonymized) == (0, 0)
        with pytest.raises(ValueError):
            cleanup_gdpr_data(store, "u2", anonymize=False)


def test_keys_in_another_database(database_url, privacy_config, tmp_path: Path) -> None:
    import psycopg

    from tests.conftest import with_dbname

    name = f"{Path(database_url).name}_keys"
    with psycopg.connect(with_dbname(database_url, "postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    keys_url = with_dbname(database_url, name)
    try:
        with open_store(database_url, keys_url=keys_url) as store:
            store.append_events("User-k1", [registered("k1")])
            backup = dump(database_url)  # a backup of the events never holds the keys
            assert "canary" not in backup and "subject_keys" in backup
            with psycopg.connect(database_url) as conn:
                assert conn.execute("SELECT count(*) FROM events.subject_keys").fetchone() == (0,)
            assert store.read_stream("User-k1")[0].event_data["name"] == "k1-name-canary"
            assert cleanup_gdpr_data(store, "k1").keys_destroyed == 1
            assert store.read_stream("User-k1")[0].event_data["name"] == FORGOTTEN
    finally:
        with psycopg.connect(with_dbname(database_url, "postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_subject_under_legal_hold_is_not_forgotten(encrypted_store) -> None:
    from evstore.core.privacy import holds

    store = encrypted_store
    store.append_events("User-h1", [registered("h1")])
    holds.place(store, "h1", "litigation", "legal team")
    with pytest.raises(holds.LegalHoldError):
        cleanup_gdpr_data(store, "h1")
    assert store.read_stream("User-h1")[0].event_data["name"] == "h1-name-canary"


def test_a_hold_placed_after_a_forget_was_planned_stops_its_batches(encrypted_store) -> None:
    """The hold is checked by every batch, not only when the job is planned: a hold placed
    between planning and running leaves the subject whole, audited; released, the job is
    completed by resuming it."""
    from evstore.core.errors import JobError
    from evstore.core.jobs.repository import JobRepository
    from evstore.core.privacy import forget_job, holds
    from evstore.core.privacy.access_log import entries_about

    store = encrypted_store
    store.append_events("User-h2", [registered("h2")])
    store.append_events("page-h2", [viewed("h2")])
    params, batches = forget_job.plan(store, {"subject": "h2", "requested_by": "test"})
    repo = JobRepository(store)
    job_id = repo.create(forget_job.KIND, params, batches, "test")
    holds.place(store, "h2", "litigation", "legal team")
    with pytest.raises(JobError, match="legal hold"):
        forget_job.resume_here(store, job_id)
    assert store.read_stream("User-h2")[0].event_data["name"] == "h2-name-canary"
    assert store.read_stream("page-h2")[0].metadata.extra["ip_address"] == "h2-ip-canary"
    assert [b.status for b in repo.batches(job_id)].count("succeeded") == 0
    assert "forget_refused" in [e["access_type"] for e in entries_about(store, "h2")]

    holds.release(store, "h2", "legal team")
    result = forget_job.resume_here(store, job_id)
    assert result.keys_destroyed == 1
    assert store.read_stream("User-h2")[0].event_data["name"] == FORGOTTEN
    assert "h2-ip-canary" not in str(store.read_stream("page-h2")[0].metadata.extra)
