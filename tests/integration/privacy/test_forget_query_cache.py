"""A forget reaches query results cached before it, in every process: the cache's
check counts a recent forget as a change (query.sql events_between)."""

from __future__ import annotations

from pathlib import Path

from evstore.core.privacy.gdpr import cleanup_gdpr_data
from evstore.core.query import EventQueryService, EventSearchCriteria

from .conftest import open_store
from .test_encryption_forget import registered


def test_a_cached_answer_read_before_a_forget_is_not_served_after_it(
        database_url: str, privacy_config: Path) -> None:
    # Given a process (its own store and query service) that cached an answer with
    # a subject's plain-text e-mail
    with open_store(database_url, encryption="none") as reader_store, \
            open_store(database_url, encryption="none") as forgetting_store:
        reader_store.append_events("User-q1", [registered("q1")])
        reader_store.append_events("User-q2", [registered("q2")])
        service = EventQueryService(reader_store)
        criteria = EventSearchCriteria(event_types=["UserRegistered"])
        first, _ = service.query_events(criteria)
        assert {e.event_data["email"] for e in first.events} == {
            "q1-mail-canary@example.com", "q2-mail-canary@example.com"}
        again, metrics = service.query_events(criteria)
        assert metrics.cache_hit and again.events == first.events  # the cache answers

        # When another process forgets q1 (no invalidate() call reaches this cache)
        result = cleanup_gdpr_data(forgetting_store, "q1")
        assert result.events_anonymized == 1

        # Then the cached answer is not served: the e-mail is gone, q2's is intact
        after, metrics = service.query_events(criteria)
        assert not metrics.cache_hit
        emails = {e.event_data["email"] for e in after.events}
        assert "q1-mail-canary@example.com" not in emails
        assert "q2-mail-canary@example.com" in emails
        assert all("q1-" not in repr(e.event_data) for e in after.events)
