"""Reading streams, aggregates and the global order (with filters); any JSON payload round-trips."""

from __future__ import annotations

import itertools
import re
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from evstore import START, EventMetadata, Position, UnknownEventTypeError

from .helpers import ev, wait_visible


@pytest.fixture
def users(store: Any) -> Any:
    """User-1 with 10 events, User-2 and Account-1 with a few, all visible to read_all."""
    store.append_events("User-1", [ev("1", "UserCreated")] + [
        ev("1", "UserLoggedIn", {"n": i}) for i in range(2, 11)
    ])
    store.append_events("User-2", [ev("2", "UserCreated"), ev("2", "UserDeleted")])
    store.append_events("Account-1", [ev("1", "AccountOpened", aggregate_type="Account")])
    wait_visible(store, 13)
    return store


def _positions(events: list[Any]) -> list[int]:
    return [e.stream_position for e in events]


def test_read_stream_forwards_backwards_and_windows(users: Any) -> None:
    assert _positions(users.read_stream("User-1")) == list(range(1, 11))
    assert _positions(users.read_stream("User-1", from_version=4)) == list(range(4, 11))
    assert _positions(users.read_stream("User-1", from_version=4, max_count=3)) == [4, 5, 6]
    assert _positions(users.read_stream("User-1", backwards=True)) == list(range(10, 0, -1))
    assert _positions(users.read_stream("User-1", backwards=True, max_count=2)) == [10, 9]
    assert _positions(users.read_stream("User-1", from_version=3, backwards=True)) == [3, 2, 1]
    assert users.read_stream("User-1", from_version=11) == []
    assert users.read_stream("User-1", max_count=0) == []
    assert users.read_stream("User-404") == []
    with pytest.raises(ValueError, match="max_count"):
        users.read_stream("User-1", max_count=-1)


def test_read_stream_returns_complete_records(users: Any) -> None:
    first = users.read_stream("User-1", max_count=1)[0]
    assert (first.aggregate_id, first.aggregate_type, first.event_type) == ("1", "User", "UserCreated")
    assert (first.stream_id, first.aggregate_version, first.event_version) == ("User-1", 1, 1)
    assert first.metadata.user_id == "tester"
    # a version-2 checksum: "2:<key id>:<HMAC-SHA256 hex>"
    assert re.fullmatch(r"2:[0-9a-f]{8}:[0-9a-f]{64}", first.checksum or "")
    assert first.stored_at is not None and first.created_at.tzinfo is not None
    assert first.global_position is not None and first.transaction_id is not None
    assert first.position == Position(first.transaction_id, first.global_position)


def test_stream_version(users: Any) -> None:
    assert users.get_stream_version("User-1") == 10
    assert users.get_stream_version("User-2") == 2
    assert users.get_stream_version("User-404") == 0


def test_events_for_aggregate(users: Any) -> None:
    # Aggregate id "1" exists as a User and as an Account
    assert len(users.get_events_for_aggregate("1")) == 11
    user = users.get_events_for_aggregate("1", "User")
    assert _positions(user) == list(range(1, 11))
    assert [e.event_type for e in users.get_events_for_aggregate("1", "Account")] == ["AccountOpened"]
    assert _positions(users.get_events_for_aggregate("1", "User", from_version=9)) == [9, 10]
    assert users.get_events_for_aggregate("404") == []


def test_read_all_pages_in_order(users: Any) -> None:
    seen, checkpoint = [], START
    while True:
        page = users.read_all(after=checkpoint, limit=4)
        seen.extend(page.events)
        assert len(page) <= 4
        checkpoint = page.checkpoint
        if page.at_end:
            break
    assert len(seen) == 13 and len({e.event_id for e in seen}) == 13
    assert [e.position for e in seen] == sorted(e.position for e in seen)
    assert Position.parse(str(checkpoint)) == checkpoint
    assert [e.event_id for e in users.iter_all(batch_size=5)] == [e.event_id for e in seen]
    assert users.read_all(after=checkpoint).events == []
    with pytest.raises(ValueError, match="limit"):
        users.read_all(limit=0)


def test_read_all_filters(users: Any) -> None:
    logins = users.read_all(event_types=["UserLoggedIn"]).events
    assert len(logins) == 9 and {e.event_type for e in logins} == {"UserLoggedIn"}
    two = users.read_all(event_types=["UserCreated", "UserDeleted"]).events
    assert [(e.stream_id, e.event_type) for e in two] == [
        ("User-1", "UserCreated"), ("User-2", "UserCreated"), ("User-2", "UserDeleted")
    ]
    accounts = users.read_all(aggregate_types=["Account"]).events
    assert [e.event_type for e in accounts] == ["AccountOpened"]
    both = users.read_all(event_types=["UserCreated"], aggregate_types=["Account"])
    assert both.events == [] and both.at_end
    # A filtered page that ends early still moves the checkpoint past what it scanned
    page = users.read_all(event_types=["UserDeleted"], limit=5)
    assert len(page.events) == 1 and page.checkpoint >= page.events[-1].position
    assert users.read_all(after=page.checkpoint, event_types=["UserDeleted"]).events == []
    assert len(list(users.iter_all(event_types=["UserLoggedIn"], batch_size=2))) == 9


def test_unknown_event_type_in_a_filter(users: Any) -> None:
    with pytest.raises(UnknownEventTypeError, match="UserLogedIn") as info:
        users.read_all(event_types=["UserLoggedIn", "UserLogedIn"])
    assert info.value.unknown == ["UserLogedIn"]
    assert "UserLoggedIn" in info.value.known and "UserLoggedIn" in str(info.value)
    with pytest.raises(ValueError, match="event_types"):
        users.read_all(event_types="UserCreated")
    with pytest.raises(ValueError, match="event_types"):
        users.read_all(event_types=[])
    with pytest.raises(ValueError, match="aggregate_types"):
        users.read_all(aggregate_types=[])


def test_a_new_type_is_known_at_once(users: Any) -> None:
    # The filter check caches known types: a type appended just now must pass
    users.append_events("User-3", [ev("3", "UserSuspended")])
    assert [e.event_type for e in wait_visible(users, 14)][-1] == "UserSuspended"
    assert len(users.read_all(event_types=["UserSuspended"]).events) == 1


# -- any JSON-able payload survives append + read with a valid checksum --------
#
# PostgreSQL's jsonb rewrites numbers (1e20 becomes 100000000000000000000, 1e-7
# becomes 0.0000001) and reorders keys; the canonical form behind the checksum
# must give the same bytes before and after.

_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)
_counter = itertools.count()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.dictionaries(_text, _json, max_size=6), extra=st.dictionaries(_text, _json, max_size=3))
@example(data={"big": 1e20, "small": 1e-7, "neg": -2.5e-12, "huge": 1.5e300}, extra={})
@example(data={"zero": 0.0, "negzero": -0.0, "int": 10**20, "f": 0.1 + 0.2}, extra={})
@example(data={"unicode": "Zoë 🎉 日本語 \u2028 \"quoted\" \\ back", "é": ["ß", {"ü": None}]}, extra={})
@example(data={"escaped": "C:\\u0000 \\\\u0000", "\\u0000": 1}, extra={"\\u0000": None})
@example(data={"nested": [[[[{"a": [1, 2.0, True, None]}]]]], "": ""}, extra={"": 1e16})
def test_any_payload_round_trips_with_a_valid_checksum(store: Any, data: Any, extra: Any) -> None:
    stream = f"User-{next(_counter)}"
    event = ev(stream, "UserUpdated", data, metadata=EventMetadata(user_id="u", extra=extra))
    store.append_events(stream, [event])
    # read_stream verifies the checksum: it raises if the canonical forms differ
    (back,) = store.read_stream(stream)
    assert back.event_data == data
    assert back.metadata.to_dict() == event.metadata.to_dict()


def test_a_read_only_snapshot_sees_one_state_and_refuses_writes(users: Any) -> None:
    # Given a snapshot taken before another append commits
    db = users.db
    count = "SELECT count(*) FROM " + db.table("events")
    with db.connection() as conn:
        with db.read_only_snapshot(conn):
            (before,) = conn.execute(count).fetchone()
            users.append_events("User-3", [ev("3", "UserCreated")])
            # Then the snapshot still sees the state it started with
            (during,) = conn.execute(count).fetchone()
        (after,) = conn.execute(count).fetchone()
        # And it changes nothing
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), db.read_only_snapshot(conn):
            conn.execute("DELETE FROM " + db.table("events"))
        (still,) = conn.execute(count).fetchone()
    assert (before, during, after, still) == (13, 13, 14, 14)
