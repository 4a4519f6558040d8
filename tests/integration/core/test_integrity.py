"""Tampering in SQL is caught by verify() and by every read path, naming the event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from evstore.core import codecs

from evstore import IntegrityError, PostgreSQLEventStore, load_settings

from .helpers import ev, raw, tamper, wait_visible

TAMPERING = {
    "event_data": "UPDATE events.events SET event_data = jsonb_set(event_data, '{email}', "
                  "'\"mallory@example.com\"') WHERE event_id = %s",
    "metadata": "UPDATE events.events SET metadata = metadata || '{\"user_id\": \"mallory\"}' "
                "WHERE event_id = %s",
    "event_type": "UPDATE events.events SET event_type = 'UserDeleted' WHERE event_id = %s",
    "stream_position": "UPDATE events.events SET stream_position = 99 WHERE event_id = %s",
    "created_at": "UPDATE events.events SET created_at = created_at + interval '1 microsecond' "
                  "WHERE event_id = %s",
}


def _seed(store: Any) -> list[Any]:
    events = [ev("1", "UserEmailChanged", {"email": f"u{i}@example.com", "i": i}) for i in range(6)]
    store.append_events("User-1", events)
    return events


@pytest.mark.parametrize("column", list(TAMPERING))
def test_tampered_row_is_caught_by_verify_and_reads(store: Any, pg_url: str, column: str) -> None:
    # Given six stored events, all verifying
    events = _seed(store)
    assert store.verify().ok and store.verify().checked == 6
    wait_visible(store, 6)
    victim = events[3]
    # When one row is changed in SQL, bypassing the store
    with tamper(pg_url) as conn:
        assert conn.execute(TAMPERING[column], [victim.event_id]).rowcount == 1
    # Then verify reports exactly that event
    report = store.verify()
    assert not report.ok and report.checked == 6
    assert [m.event_id for m in report.mismatches] == [victim.event_id]
    assert report.mismatches[0].stream_id == "User-1"
    # And every read path refuses it with an error naming it
    for read in (
        lambda: store.read_stream("User-1"),
        lambda: store.read_all(),
        lambda: store.get_events_for_aggregate("1"),
    ):
        with pytest.raises(IntegrityError, match=str(victim.event_id)) as info:
            read()
        assert info.value.event_id == victim.event_id
    # While the untouched events before it still read fine
    assert len(store.read_stream("User-1", max_count=3)) == 3


def test_verify_over_a_range(store: Any, pg_url: str) -> None:
    events = _seed(store)
    positions = [e.global_position for e in store.read_stream("User-1")]
    with tamper(pg_url) as conn:
        conn.execute(TAMPERING["event_data"], [events[4].event_id])
    assert store.verify(positions[0], positions[3]).ok
    assert store.verify(positions[0], positions[3]).checked == 4
    bad = store.verify(positions[4], positions[4])
    assert bad.checked == 1 and bad.mismatches[0].global_position == positions[4]
    assert len(store.verify(from_position=positions[2]).mismatches) == 1
    # Reads that do not verify (EVENT_STORE_VERIFY_READS=false) still return the row
    with PostgreSQLEventStore(pg_url, settings=load_settings(verify_reads=False)) as lax:
        assert lax.read_stream("User-1")[4].event_data["email"] == "mallory@example.com"


@pytest.mark.parametrize("codec", ["gzip", "lz4", "zstd"])
def test_tampered_compressed_payload_is_caught(pg_url: str, codec: str) -> None:
    settings = load_settings(compression=codec, compression_threshold=64)
    with PostgreSQLEventStore(pg_url, settings=settings) as store:
        # Given compressed events
        events = [ev("1", "UserProfileUpdated", {"bio": "x" * 500, "i": i}) for i in range(3)]
        store.append_events("User-1", events)
        with raw(pg_url) as conn:
            rows = conn.execute(
                "SELECT event_id, compression, payload FROM events.events ORDER BY stream_position"
            ).fetchall()
        assert [r[1] for r in rows] == [codec] * 3
        forged = dict(events[0].event_data, bio="y" * 500)
        with tamper(pg_url) as conn:
            # When one payload is replaced by a valid compression of other content
            conn.execute(
                "UPDATE events.events SET payload = %s WHERE event_id = %s",
                [codecs.compress(codec, json.dumps(forged).encode()), events[0].event_id],
            )
            # And another one's bytes are damaged
            damaged = bytearray(rows[2][2])
            damaged[len(damaged) // 2] ^= 0xFF
            damaged = damaged[: len(damaged) - 3]
            conn.execute(
                "UPDATE events.events SET payload = %s WHERE event_id = %s",
                [bytes(damaged), events[2].event_id],
            )
        # Then verify names both
        report = store.verify()
        assert {m.event_id for m in report.mismatches} == {events[0].event_id, events[2].event_id}
        # And reads refuse each with an error naming the event
        with pytest.raises(IntegrityError, match=str(events[0].event_id)):
            store.read_stream("User-1", max_count=1)
        assert store.read_stream("User-1", from_version=2, max_count=1)[0].event_data["i"] == 1
        with pytest.raises(IntegrityError, match=str(events[2].event_id)):
            store.read_stream("User-1", from_version=3)
