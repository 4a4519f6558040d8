"""The blind index is written by the append itself: in its transaction, with its events or not at all.

Every append shape (one statement with an exact version, VALUES under the
lock with ANY, COPY beyond 64 events) writes the entries of the events it
stores; an append that loses (a stale expected version, a reused event id)
writes none; a retried append seals to the same bytes, is deduplicated and
adds no entry.
"""

from __future__ import annotations

import uuid

import pytest
from evstore.core.errors import ConcurrencyError, DuplicateEventError
from evstore.core.privacy.crypto import find_events

from evstore import EventMetadata, EventRecord


def registered(user: str, event_id: uuid.UUID | None = None) -> EventRecord:
    extra = {} if event_id is None else {"event_id": event_id}
    return EventRecord(user, "User", "UserRegistered",
                       {"email": f"{user}@example.com", "name": f"N {user}", "plan": "pro"}, **extra)


def viewed(user: str, i: int) -> EventRecord:
    return EventRecord(user, "User", "PageViewed", {"referrer": f"https://r/{user}/{i}"},
                       metadata=EventMetadata(user_id=user, extra={"ip_address": f"10.0.0.{i % 250}"}))


def entries(store) -> int:
    with store.db.connection() as conn:
        (n,) = conn.execute(f"SELECT count(*) FROM {store.db.table('blind_index')}").fetchone()
    return int(n)


def stored_data(store, stream_id: str) -> list[str]:
    with store.db.connection() as conn:
        return [r[0] for r in conn.execute(
            f"SELECT event_data::text FROM {store.db.table('events')} WHERE stream_id = %s "
            "ORDER BY stream_position", [stream_id])]


@pytest.mark.parametrize("shape", ["exact", "any", "copy"])
def test_each_append_shape_writes_its_entries(encrypted_store, shape: str) -> None:
    store = encrypted_store
    views = 100 if shape == "copy" else 3  # > 64 events: COPY
    events = [registered("u1"), *(viewed("u1", i) for i in range(views))]
    expected = None if shape == "any" else 0
    store.append_events("User-u1", events, expected_version=expected)
    # name, email for the registration; ip and referrer for each view
    assert entries(store) == 2 + 2 * views
    [found] = find_events(store, "UserRegistered", "data.email", "u1@example.com")
    assert found.event_id == events[0].event_id
    assert len(find_events(store, "PageViewed", "data.referrer", f"https://r/u1/{views - 1}")) == 1


def test_a_lost_append_writes_no_entry(encrypted_store) -> None:
    store = encrypted_store
    store.append_events("User-u2", [registered("u2")], expected_version=0)
    before = entries(store)
    with pytest.raises(ConcurrencyError):  # stale version: the one statement inserts nothing
        store.append_events("User-u2", [viewed("u2", 1)], expected_version=0)
    with pytest.raises(DuplicateEventError):  # an id stored in another stream: rolled back
        store.append_events("User-u3", [registered("u3", event_id=store.read_stream("User-u2")[0].event_id)])
    assert entries(store) == before
    assert find_events(store, "PageViewed", "data.referrer", "https://r/u2/1") == []
    assert find_events(store, "UserRegistered", "data.email", "u3@example.com") == []


@pytest.mark.parametrize("expected", [0, None])
def test_a_retry_seals_the_same_bytes_and_adds_no_entry(encrypted_store, expected) -> None:
    store = encrypted_store
    events = [registered("u4"), viewed("u4", 1), viewed("u4", 2)]
    first = store.append_events("User-u4", events, expected_version=expected)
    stored, count = stored_data(store, "User-u4"), entries(store)
    again = store.append_events("User-u4", events, expected_version=expected)
    assert again.deduplicated and not first.deduplicated
    assert again.global_positions == first.global_positions
    assert stored_data(store, "User-u4") == stored and entries(store) == count
    assert "u4@example.com" not in "".join(stored)
