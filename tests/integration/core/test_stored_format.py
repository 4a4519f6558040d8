"""The stored format of migration 0006 (issues 9 and 17), each claim against the real server.

- an event id once in the whole store, a position once per stream, in the
  database itself (event_index), whatever the time or the path of the INSERT;
- events append-only (UPDATE/DELETE/TRUNCATE refused outside the store's
  rewriting paths), and a rewrite that recomputes an unkeyed checksum caught;
- keyed, versioned checksums over the JSON text exactly as PostgreSQL sends it;
- stream reads open only the month partitions that hold the stream;
- metrics from the catalog, pages capped in bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from evstore.core.keys import KeyRing, keyring, parse_secret
from evstore.core.serialization import MAX_DEPTH, checksum, dumps, jsonb_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evstore import (
    DuplicateEventError,
    EventMetadata,
    EventRecord,
    EventValidationError,
    IntegrityError,
    PostgreSQLEventStore,
    load_settings,
)

from .helpers import ev, raw, tamper, wait_visible

OTHER_KEY = "a1" * 32


# -- 1. an event id once, a position once -------------------------------------


def test_a_retry_with_a_new_timestamp_is_deduplicated_not_stored_twice(store: Any, pg_url: str) -> None:
    # Given an event stored once
    first = ev("1", "UserCreated", {"email": "ada@example.com"})
    store.append_events("User-1", [first], expected_version=0)
    # When the producer retries it, rebuilt with a new created_at
    retry = EventRecord("1", "User", "UserCreated", {"email": "ada@example.com"},
                        metadata=first.metadata, event_id=first.event_id,
                        created_at=first.created_at + timedelta(seconds=3))
    result = store.append_events("User-1", [retry], expected_version=0)
    # Then it is recognised as the same event, and stored once, at its first time
    assert result.deduplicated and result.version == 1
    events = store.read_stream("User-1")
    assert [e.event_id for e in events] == [first.event_id]
    assert events[0].created_at == first.created_at
    with raw(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM events.events").fetchone() == (1,)


def test_the_same_id_with_other_content_and_time_is_refused(store: Any) -> None:
    first = ev("1", "UserCreated", {"email": "ada@example.com"})
    store.append_events("User-1", [first])
    other = EventRecord("1", "User", "UserCreated", {"email": "eve@example.com"},
                        event_id=first.event_id, created_at=first.created_at - timedelta(days=40))
    with pytest.raises(DuplicateEventError, match=str(first.event_id)):
        store.append_events("User-1", [other], expected_version=0)
    with pytest.raises(DuplicateEventError, match="another stream"):
        store.append_events("User-2", [EventRecord("2", "User", "UserCreated", {},
                                                   event_id=first.event_id,
                                                   created_at=first.created_at - timedelta(days=40))])
    assert store.get_stream_version("User-2") == 0


def _insert_copy_of(conn: psycopg.Connection, victim: Any, **changes: str) -> None:
    """INSERT a copy of a stored row straight into events, with some columns changed."""
    sets = ", ".join(f"{column} = {value}" for column, value in changes.items())
    conn.execute("CREATE TEMP TABLE copy_row AS SELECT * FROM events.events WHERE event_id = %s",
                 [victim])
    conn.execute(f"UPDATE copy_row SET {sets}")
    conn.execute("INSERT INTO events.events SELECT * FROM copy_row")


@pytest.mark.parametrize("changes", [
    # a second event at position 1 of the stream (another id, same place)
    {"event_id": "gen_random_uuid()"},
    # the same id again at another time and place (another month's partition)
    {"created_at": "created_at - interval '45 days'", "stream_id": "'User-9'"},
])
def test_the_database_refuses_a_second_row_for_an_id_or_a_position(
    store: Any, pg_url: str, changes: dict[str, str]
) -> None:
    # Given a stored event, and the partition of the month before
    store.create_partitions_ahead(0, now=datetime.now(UTC) - timedelta(days=45))
    event = ev("1")
    store.append_events("User-1", [event])
    # When someone with INSERT on events writes a second row around the store
    with raw(pg_url, autocommit=False) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation, match="event_index"):
            _insert_copy_of(conn, event.event_id, **changes)
    # Then the store still holds the one event, and verify says so
    report = store.verify()
    assert report.ok and report.checked == 1


def test_events_are_append_only_outside_the_stores_rewrite_paths(store: Any, pg_url: str) -> None:
    store.append_events("User-1", [ev("1"), ev("1", "UserUpdated")])
    statements = [
        "UPDATE events.events SET event_type = 'X'",
        "DELETE FROM events.events",
        "TRUNCATE events.events",
        "UPDATE events.event_index SET stream_position = 7",
        "DELETE FROM events.event_index",
    ]
    with raw(pg_url) as conn:
        partition = conn.execute(
            "SELECT relname FROM pg_class WHERE relname LIKE 'events_y%' ORDER BY 1 LIMIT 1"
        ).fetchone()
        assert partition is not None
        # a partition, addressed directly, is protected too
        statements.append(f"DELETE FROM events.{partition[0]}")
        for statement in statements:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)
    assert [e.event_type for e in store.read_stream("User-1")] == ["UserCreated", "UserUpdated"]


def test_a_rewrite_with_a_recomputed_unkeyed_checksum_is_caught(store: Any, pg_url: str) -> None:
    # Given a stored event
    event = ev("1", "UserEmailChanged", {"email": "ada@example.com"})
    store.append_events("User-1", [event])
    wait_visible(store, 1)
    # When someone with the database credential (and not the secret) rewrites it
    # and recomputes the old kind of checksum, a plain SHA-256 of its content
    forged_data = {"email": "mallory@example.com"}
    stored = store.read_stream("User-1")[0]
    legacy = checksum(event_id=str(event.event_id), stream_id="User-1", stream_position=1,
                      aggregate_id="1", aggregate_type="User", event_type="UserEmailChanged",
                      event_version=1, created_at=stored.created_at, data_json=dumps(forged_data),
                      metadata_json=dumps(stored.metadata.to_dict()))
    with tamper(pg_url) as conn:
        conn.execute("UPDATE events.events SET event_data = %s, checksum = %s WHERE event_id = %s",
                     [json.dumps(forged_data), legacy, event.event_id])
    # Then verify and every read refuse it
    report = store.verify()
    assert [m.event_id for m in report.mismatches] == [event.event_id]
    with pytest.raises(IntegrityError, match="version-1"):
        store.read_stream("User-1")
    # And so does a forged version-2 checksum made without the secret
    guess = "2:" + keyring(store.settings).kid + ":" + hashlib.sha256(b"guess").hexdigest()
    with tamper(pg_url) as conn:
        conn.execute("UPDATE events.events SET checksum = %s WHERE event_id = %s",
                     [guess, event.event_id])
    assert not store.verify().ok


# -- 3. versioned checksums: upgrade and rotation ---------------------------------


def test_version_1_events_are_checked_then_re_signed_by_upgrade(store: Any, pg_url: str) -> None:
    # Given events stored before migration 0006 (version-1 checksums)
    events = [ev("1", "UserCreated", {"i": i, "x": 1e-7}) for i in range(3)]
    store.append_events("User-1", events)
    with tamper(pg_url) as conn:
        for e in store.read_stream("User-1"):
            old = checksum(event_id=str(e.event_id), stream_id="User-1",
                           stream_position=e.stream_position, aggregate_id="1",
                           aggregate_type="User", event_type=e.event_type, event_version=1,
                           created_at=e.created_at, data_json=dumps(e.event_data),
                           metadata_json=dumps(e.metadata.to_dict()))
            conn.execute("UPDATE events.events SET checksum = %s WHERE event_id = %s",
                         [old, e.event_id])
    # Then reads refuse them until they are upgraded (unless told to accept them)
    with pytest.raises(IntegrityError, match="verify --upgrade"):
        store.read_stream("User-1")
    lax = load_settings(database_url=pg_url, accept_legacy_checksums=True)
    with PostgreSQLEventStore(pg_url, settings=lax) as accepting:
        assert len(accepting.read_stream("User-1")) == 3
    assert len(store.verify().mismatches) == 3
    # When verify --upgrade runs
    report = store.verify(upgrade=True)
    # Then each is checked and re-signed, and reads and verify accept them
    assert report.ok and report.upgraded == 3 and report.legacy == 0
    assert all(e.checksum.startswith("2:") for e in store.read_stream("User-1"))
    assert store.verify().ok


def test_an_old_secret_still_verifies_and_an_unknown_one_is_named(pg_url: str) -> None:
    old = load_settings(database_url=pg_url, secret_key=OTHER_KEY)
    with PostgreSQLEventStore(pg_url, settings=old) as s:
        s.append_events("User-1", [ev("1")])
        old_kid = keyring(old).kid
    # A process given a new secret and the old one as previous reads the events
    rotated = load_settings(database_url=pg_url, previous_secret_keys=OTHER_KEY)
    with PostgreSQLEventStore(pg_url, settings=rotated) as s:
        assert len(s.read_stream("User-1")) == 1
        assert s.verify().ok
    # One given another secret only says which key it lacks
    with PostgreSQLEventStore(pg_url) as s:
        with pytest.raises(Exception, match=old_kid):
            s.read_stream("User-1")
        assert s.verify().mismatches[0].computed == f"<unknown key {old_kid}>"


def test_keys_are_refused_when_short_or_malformed() -> None:
    with pytest.raises(Exception, match="at least 32"):
        parse_secret("00" * 16, "EVSTORE_SECRET_KEY")
    with pytest.raises(Exception, match="hex or base64 \\(value not shown\\)"):
        parse_secret("not a key!", "EVSTORE_SECRET_KEY")
    ring = KeyRing(bytes(32))
    assert ring.verify("x", b"data", ring.sign("x", b"data"))
    assert not ring.verify("x", b"other", ring.sign("x", b"data"))


# -- the JSON text: ours is exactly what jsonb gives back -------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                                     blacklist_characters="\x00"), max_size=6),
                      children, max_size=5),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def server() -> Iterator[psycopg.Connection]:
    import os
    with psycopg.connect(os.environ.get("DATABASE_URL", ""), autocommit=True) as conn:
        yield conn


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.dictionaries(st.text(max_size=8).filter(lambda k: "\x00" not in k and not any(
    0xD800 <= ord(c) <= 0xDFFF for c in k)), _json, max_size=6))
def test_our_json_text_is_the_text_jsonb_gives_back(server: psycopg.Connection, value: Any) -> None:
    ours = jsonb_text(value)
    (theirs,) = server.execute("SELECT %s::jsonb::text", [ours]).fetchone()  # type: ignore[misc]
    assert ours == theirs
    assert json.loads(ours) == json.loads(theirs)


@pytest.mark.parametrize(("value", "problem"), [
    ({1: "a"}, "key that is not a string \\(int\\)"),
    ({1.5: "x"}, "key that is not a string \\(float\\)"),
    ({"a": [{"b": {2: 1}}]}, "key that is not a string"),
    ({"x": "\ud800"}, "surrogate"),
    ({"x": "a\x00b"}, "NUL"),
])
def test_what_jsonb_cannot_hold_is_refused(value: Any, problem: str) -> None:
    with pytest.raises(EventValidationError, match=problem):
        jsonb_text(value, "event_data")


def test_nesting_deeper_than_the_documented_limit_is_refused_not_a_recursion_error(store: Any) -> None:
    deep: Any = "leaf"
    for _ in range(10_000):
        deep = {"d": deep}
    with pytest.raises(EventValidationError, match=f"nested deeper than {MAX_DEPTH} levels"):
        store.append_events("User-1", [ev("1", data=deep)])
    ok: Any = 1
    for _ in range(MAX_DEPTH - 1):
        ok = [ok]
    store.append_events("User-1", [ev("1", data={"ok": ok})])
    assert store.get_stream_version("User-1") == 1


def test_uuid_ids_are_accepted_and_stored_as_their_text(store: Any) -> None:
    user, correlation = uuid.uuid4(), uuid.uuid4()
    event = EventRecord(user, "User", "UserCreated", {"n": 1},  # type: ignore[arg-type]
                        metadata=EventMetadata(user_id=user, correlation_id=correlation))  # type: ignore[arg-type]
    store.append_events(f"User-{user}", [event])
    (stored,) = store.read_stream(f"User-{user}")
    assert stored.aggregate_id == str(user)
    assert (stored.metadata.user_id, stored.metadata.correlation_id) == (str(user), str(correlation))
    assert [e.event_id for e in store.get_events_for_aggregate(str(user))] == [event.event_id]


def test_an_event_over_the_size_limit_is_refused(pg_url: str) -> None:
    limited = load_settings(database_url=pg_url, max_event_bytes=64 * 1024)
    with PostgreSQLEventStore(pg_url, settings=limited) as s:
        with pytest.raises(EventValidationError, match="more than the maximum of 65,536"):
            s.append_events("User-1", [ev("1"), ev("1", data={"blob": "x" * 70_000})])
        assert s.get_stream_version("User-1") == 0


# -- 2. stream reads touch only the stream's months; metrics scan nothing -----------


def _scans(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT relname, coalesce(idx_scan, 0) + coalesce(seq_scan, 0) FROM pg_stat_xact_user_tables"
        " WHERE schemaname = 'events' AND relname LIKE 'events_y%'").fetchall()
    return {name: int(n) for name, n in rows if n}


def test_a_stream_read_opens_only_the_partitions_that_hold_the_stream(store: Any, pg_url: str) -> None:
    # Given twelve month partitions, and a stream whose events are in two of them
    now = datetime.now(UTC)
    store.create_partitions_ahead(12, now=now - timedelta(days=31 * 12))
    months = [now - timedelta(days=31 * k) for k in (6, 4)]
    store.append_events("User-1", [ev("1", created_at=months[0]), ev("1", created_at=months[1])])
    store.append_events("User-2", [ev("2", created_at=now - timedelta(days=31 * 9))])
    # (the partitions from the stream's first month to its last, and no other)
    names = {f"events_y{m.year:04d}m{m.month:02d}" for m in (months[0], months[0] + timedelta(days=31),
                                                              months[1])}
    statement = store.db.sql("store", "read_stream", columns="event_id")
    with raw(pg_url, autocommit=False) as conn:
        # When the store's stream read runs
        rows = conn.execute(statement, ["User-1", 1, None, False]).fetchall()
        # Then it found both events and scanned the partitions of its months only
        assert len(rows) == 2
        assert set(_scans(conn)) == names
    assert [e.stream_position for e in store.read_stream("User-1")] == [1, 2]
    assert [e.stream_position for e in store.read_stream("User-1", backwards=True)] == [2, 1]


def test_metrics_come_from_the_catalog_without_scanning_partitions(store: Any, pg_url: str) -> None:
    store.append_events("User-1", [ev("1", "UserCreated")]
                        + [ev("1", "UserUpdated") for _ in range(29)])
    store.append_events("User-2", [ev("2", "UserCreated") for _ in range(10)])
    with raw(pg_url) as conn:
        conn.execute("ANALYZE events.events")
        conn.execute("ANALYZE events.streams")
    # (estimates: the row counts and most common values of the last ANALYZE)
    m = store.metrics()
    assert not m.exact and m.events == 40 and m.streams == 2
    assert m.events_by_type == {"UserUpdated": 29, "UserCreated": 11}
    exact = store.metrics(exact=True)
    assert exact.exact and exact.events == 40 and exact.original_payload_bytes
    with raw(pg_url, autocommit=False) as conn:
        for name in ("metrics_totals", "metrics_types_estimate", "metrics_streams"):
            conn.execute(store.db.sql("store", name)).fetchall()
        assert _scans(conn) == {}


# -- bounds: pages capped in bytes --------------------------------------------------


def test_pages_are_capped_in_bytes_and_every_event_still_arrives_once(pg_url: str) -> None:
    capped = load_settings(database_url=pg_url, max_page_bytes=1024 * 1024,
                           max_event_bytes=300 * 1024)
    with PostgreSQLEventStore(pg_url, settings=capped) as s:
        blob = "x" * 200_000
        for i in range(12):
            s.append_events(f"User-{i}", [ev(str(i), data={"blob": blob, "i": i})])
        wait_visible(s, 12)
        page = s.read_all(limit=1000)
        assert 1 <= len(page.events) <= 6 and not page.at_end
        seen = [e.event_data["i"] for e in s.iter_all(None, 1000)]
        assert sorted(seen) == list(range(12)) and len(seen) == 12
        # one stream bigger than the cap: read_stream refuses, iter_stream pages
        s.append_events("Big-1", [ev("b", aggregate_type="Big", data={"blob": blob, "i": i})
                                  for i in range(8)])
        with pytest.raises(Exception, match="EVENT_STORE_MAX_PAGE_BYTES"):
            s.read_stream("Big-1")
        assert [e.event_data["i"] for e in s.iter_stream("Big-1", page_size=3)] == list(range(8))
        assert len(s.read_stream("Big-1", max_count=4)) == 4


def test_checksum_text_names_version_and_key(store: Any) -> None:
    store.append_events("User-1", [ev("1")])
    (event,) = store.read_stream("User-1")
    kid = keyring(store.settings).kid
    assert re.fullmatch(rf"2:{kid}:[0-9a-f]{{64}}", event.checksum)


def test_a_payload_that_decompresses_past_its_recorded_size_is_refused_unexpanded(pg_url: str) -> None:
    # Given a compressed event
    from evstore.core import codecs

    settings = load_settings(database_url=pg_url, compression="zstd", compression_threshold=64)
    with PostgreSQLEventStore(pg_url, settings=settings) as s:
        event = ev("1", "UserProfileUpdated", {"bio": "x" * 500})
        s.append_events("User-1", [event])
        wait_visible(s, 1)
        # When its payload is replaced by a small bomb: 64 MiB of zeros in a few KB
        bomb = codecs.compress("zstd", bytes(64 * 1024 * 1024))
        assert len(bomb) < 64 * 1024
        with tamper(pg_url) as conn:
            conn.execute("UPDATE events.events SET payload = %s WHERE event_id = %s",
                         [bomb, event.event_id])
        # Then reads refuse it as unreadable, having stopped at its recorded size
        with pytest.raises(IntegrityError, match="unreadable") as refused:
            s.read_stream("User-1")
        assert "more than the" in str(refused.value.__cause__)
        assert s.verify().mismatches[0].computed == "<unreadable>"
