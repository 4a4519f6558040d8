from __future__ import annotations


def test_store_round_trip(store) -> None:
    from evstore import EventRecord

    result = store.append_events("User-1", [EventRecord("1", "User", "UserCreated", {"a": 1})])
    assert result.version == 1
    assert [e.event_type for e in store.read_stream("User-1")] == ["UserCreated"]
