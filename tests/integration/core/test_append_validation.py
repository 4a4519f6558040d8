"""Appends that must be refused (and write nothing), retries, duplicate event ids, and
out-of-range input (a clear evstore error, never a raw driver error)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

from evstore import (
    ANY,
    NO_STREAM,
    ConcurrencyError,
    DuplicateEventError,
    EventMetadata,
    EventRecord,
    EventStoreError,
    EventValidationError,
    PostgreSQLEventStore,
)

from .helpers import counts, ev

STREAM = "User-1"


@pytest.fixture
def seeded(store: Any) -> Any:
    """A store whose stream User-1 is at version 1."""
    store.append_events(STREAM, [ev("1", "UserCreated")])
    return store


def _malformed() -> list[tuple[str, Callable[[], tuple[str, list[Any], Any]], str]]:
    """(case, build -> (stream, events, expected_version), pattern the error must match)."""
    good = ev("1", "UserUpdated")
    same = uuid.uuid4()
    return [
        (
            "empty event type",
            lambda: (STREAM, [ev("1", "")], None),
            r"event_type must be a non-empty",
        ),
        (
            "blank event type",
            lambda: (STREAM, [ev("1", "   ")], None),
            r"event_type must be a non-empty",
        ),
        (
            "event type not a string",
            lambda: (STREAM, [ev("1", 7)], None),  # type: ignore[arg-type]
            r"event_type",
        ),
        (
            "NUL in event type",
            lambda: (STREAM, [ev("1", "User\x00Updated")], None),
            r"event_type contains a NUL",
        ),
        (
            "empty aggregate id",
            lambda: (STREAM, [ev("")], None),
            r"aggregate_id must be a non-empty",
        ),
        (
            "object in data",
            lambda: (STREAM, [ev("1", data={"x": object()})], None),
            r"event_data is not JSON-serializable",
        ),
        (
            "set in data",
            lambda: (STREAM, [ev("1", data={"x": {1, 2}})], None),
            r"event_data is not JSON-serializable",
        ),
        (
            "bytes in data",
            lambda: (STREAM, [ev("1", data={"x": b"raw"})], None),
            r"event_data is not JSON-serializable",
        ),
        (
            "NaN in data",
            lambda: (STREAM, [ev("1", data={"x": float("nan")})], None),
            r"event_data is not JSON-serializable",
        ),
        (
            "infinity in data",
            lambda: (STREAM, [ev("1", data={"x": [float("inf")]})], None),
            r"event_data is not JSON-serializable",
        ),
        (
            "mixed key types",
            lambda: (STREAM, [ev("1", data={1: "a", "b": 2})], None),
            r"event_data has a key that is not a string \(int\)",
        ),
        (
            "NUL in data",
            lambda: (STREAM, [ev("1", data={"x": "a\x00b"})], None),
            r"event_data contains a NUL",
        ),
        (
            "NUL in a data key",
            lambda: (STREAM, [ev("1", data={"a\x00": 1})], None),
            r"event_data contains a NUL",
        ),
        (
            "lone surrogate",
            lambda: (STREAM, [ev("1", data={"x": "\ud800"})], None),
            r"event_data contains an invalid Unicode",
        ),
        (
            "NUL in metadata",
            lambda: (STREAM, [ev("1", metadata=EventMetadata(user_id="a\x00"))], None),
            r"metadata contains a NUL",
        ),
        (
            "object in metadata",
            lambda: (STREAM, [ev("1", metadata=EventMetadata(extra={"k": object()}))], None),
            r"metadata is not JSON-serializable",
        ),
        (
            "metadata a dict",
            lambda: (STREAM, [ev("1", metadata={"user_id": "x"})], None),  # type: ignore[arg-type]
            r"metadata must be an EventMetadata",
        ),
        (
            "data not a dict",
            lambda: (STREAM, [ev("1", data=[1, 2])], None),  # type: ignore[arg-type]
            r"event_data must be a JSON object",
        ),
        (
            "naive datetime",
            lambda: (STREAM, [ev("1", created_at=datetime(2024, 1, 1))], None),
            r"created_at must be a timezone-aware",
        ),
        (
            "event_version 0",
            lambda: (STREAM, [EventRecord("1", "User", "UserUpdated", {}, event_version=0)], None),
            r"event_version must be an integer from 1 to 2\*\*31-1",
        ),
        (
            "not an EventRecord",
            lambda: (STREAM, [{"event_type": "UserUpdated"}], None),
            r"expected an EventRecord",
        ),
        (
            "mixed aggregates in one call",
            lambda: (STREAM, [good, ev("2")], None),
            r"mixes aggregates",
        ),
        (
            "mixed aggregate types in one call",
            lambda: (STREAM, [good, ev("1", aggregate_type="Account")], None),
            r"mixes aggregates",
        ),
        (
            "foreign aggregate, exact",
            lambda: (STREAM, [ev("2")], 1),
            r"belongs to aggregate User/1, not User/2",
        ),
        (
            "foreign aggregate, any",
            lambda: (STREAM, [ev("2")], ANY),
            r"belongs to aggregate User/1, not User/2",
        ),
        (
            "foreign aggregate type",
            lambda: (STREAM, [ev("1", aggregate_type="Account")], 1),
            r"belongs to aggregate User/1",
        ),
        (
            "duplicate ids in one call",
            lambda: (STREAM, [ev("1", event_id=same), ev("1", event_id=same)], 1),
            r"duplicate event id",
        ),
        (
            "empty list",
            lambda: (STREAM, [], 1),
            r"the list of events is empty",
        ),
        (
            "empty stream id",
            lambda: ("  ", [good], 1),
            r"stream id must be a non-empty",
        ),
        (
            "negative expected version",
            lambda: (STREAM, [good], -1),
            r"expected_version must be an integer from 0 to 2\*\*62-1",
        ),
        (
            "string expected version",
            lambda: (STREAM, [good], "1"),
            r"expected_version must be an integer from 0 to 2\*\*62-1",
        ),
        (
            "float expected version",
            lambda: (STREAM, [good], 1.0),
            r"expected_version must be an integer from 0 to 2\*\*62-1",
        ),
        (
            "bool expected version",
            lambda: (STREAM, [good], True),
            r"expected_version must be an integer from 0 to 2\*\*62-1",
        ),
        (
            "expected version vs aggregate_version",
            lambda: (STREAM, [ev("1", aggregate_version=5)], 1),
            r"disagrees with the first event's aggregate_version 5",
        ),
        (
            "no stream vs aggregate_version",
            lambda: (STREAM, [ev("1", aggregate_version=4)], NO_STREAM),
            r"expected no stream",
        ),
        (
            "aggregate versions not consecutive",
            lambda: (STREAM, [ev("1", aggregate_version=2), ev("1", aggregate_version=4)], None),
            r"breaks the sequence",
        ),
        (
            "negative aggregate_version",
            lambda: (STREAM, [ev("1", aggregate_version=-1)], None),
            r"aggregate_version must be an integer from 0 to 2\*\*62-1",
        ),
        (
            "bad event late in a batch",
            lambda: (STREAM, [good, ev("1"), ev("1", "")], 1),
            r"^event #2: event_type",
        ),
    ]




def test_every_malformed_append_is_refused_and_writes_nothing(seeded: Any, pg_url: str) -> None:
    # Given a stream at version 1
    before = counts(pg_url)
    problems = []
    for case, build, pattern in _malformed():
        stream, events, expected = build()
        # When a malformed append is attempted
        try:
            seeded.append_events(stream, events, expected_version=expected)
        except EventValidationError as exc:
            # Then it names the problem ...
            if not re.search(pattern, str(exc)):
                problems.append(f"{case}: message {str(exc)!r} does not match {pattern!r}")
        except Exception as exc:
            problems.append(f"{case}: raised {type(exc).__name__}: {exc}")
        else:
            problems.append(f"{case}: was accepted")
        # ... and nothing was written
        if counts(pg_url) != before:
            problems.append(f"{case}: the tables changed")
            before = counts(pg_url)
    assert problems == []
    assert [e.event_type for e in seeded.read_stream(STREAM)] == ["UserCreated"]


def test_validation_errors_are_value_errors_with_the_index(seeded: Any) -> None:
    with pytest.raises(ValueError, match=r"^event #1: ") as info:
        seeded.append_events(STREAM, [ev("1"), ev("1", data={"x": float("nan")})])
    assert isinstance(info.value, EventStoreError) and info.value.index == 1


def test_concurrency_error_changes_nothing(seeded: Any, pg_url: str) -> None:
    seeded.append_events(STREAM, [ev("1", "UserUpdated")], expected_version=1)
    before = counts(pg_url)
    cases = [
        (STREAM, 1, 1, 2),            # stale version
        (STREAM, 7, 7, 2),            # version from the future
        (STREAM, NO_STREAM, NO_STREAM, 2),
        (STREAM, 0, NO_STREAM, 2),
        ("User-new", 3, 3, 0),        # a stream that does not exist
    ]
    for stream, expected, shown, actual in cases:
        # When an append of several events, of a type never seen before, conflicts
        batch = [ev(stream.split("-", 1)[1], "BrandNewType", {"i": i}) for i in range(3)]
        with pytest.raises(ConcurrencyError) as info:
            seeded.append_events(stream, batch, expected_version=expected)
        # Then the error carries the stream, the expected and the actual version
        err = info.value
        assert (err.stream_id, err.expected_version, err.actual_version) == (stream, shown, actual)
        assert f"stream {stream!r}" in str(err) and f"version {actual}" in str(err)
        # And no row anywhere changed (not the stream, events, nor known types)
        assert counts(pg_url) == before
    big = [ev("1", "BrandNewType", {"i": i}) for i in range(100)]  # the COPY path
    with pytest.raises(ConcurrencyError):
        seeded.append_events(STREAM, big, expected_version=1)
    assert counts(pg_url) == before
    assert "BrandNewType" not in seeded.known_event_types()


@pytest.mark.parametrize("size", [2, 100], ids=["values", "copy"])
def test_idempotent_retry_exact_version(store: Any, pg_url: str, size: int) -> None:
    # Given an append of a batch that succeeded (the caller may not have heard)
    store.append_events(STREAM, [ev("1")])
    batch = [ev("1", "UserUpdated", {"i": i}) for i in range(size)]
    first = store.append_events(STREAM, batch, expected_version=1)
    before = counts(pg_url)
    # When the same batch is retried with the same expected version
    again = store.append_events(STREAM, batch, expected_version=1)
    # Then it succeeds, reports the same outcome, and writes nothing twice
    assert again.deduplicated and not first.deduplicated
    assert (again.version, again.global_positions) == (first.version, first.global_positions)
    assert again.transaction_id == first.transaction_id
    assert counts(pg_url) == before
    # Even after the stream moved on
    store.append_events(STREAM, [ev("1", "UserLoggedIn")], expected_version=size + 1)
    later = store.append_events(STREAM, batch, expected_version=1)
    assert later.deduplicated and later.global_positions == first.global_positions
    assert store.get_stream_version(STREAM) == size + 2


def test_idempotent_retry_no_stream_and_any(store: Any, pg_url: str) -> None:
    created = ev("1", "UserCreated")
    first = store.append_events(STREAM, [created], expected_version=NO_STREAM)
    assert store.append_events(STREAM, [created], expected_version=NO_STREAM).deduplicated
    logged = [ev("1", "UserLoggedIn"), ev("1", "UserLoggedIn")]
    second = store.append_events(STREAM, logged, expected_version=ANY)
    before = counts(pg_url)
    retry = store.append_events(STREAM, logged, expected_version=ANY)
    assert retry.deduplicated
    assert (retry.version, retry.global_positions) == (second.version, second.global_positions)
    assert store.append_events(STREAM, [created], expected_version=ANY).global_positions == (
        first.global_positions
    )
    assert counts(pg_url) == before and store.get_stream_version(STREAM) == 3


def test_idempotent_retry_with_aggregate_versions(store: Any, pg_url: str) -> None:
    # The expected version follows from the first event's aggregate_version
    batch = [ev("1", "UserCreated", aggregate_version=1), ev("1", "UserUpdated", aggregate_version=2)]
    first = store.append_events(STREAM, batch)
    retry = store.append_events(STREAM, batch)
    assert retry.deduplicated and retry.global_positions == first.global_positions
    assert counts(pg_url)["events"] == 2
    with pytest.raises(ConcurrencyError):
        store.append_events(STREAM, [ev("1", aggregate_version=2)])


@pytest.mark.parametrize("expected", [0, NO_STREAM, ANY], ids=["exact", "no_stream", "any"])
def test_same_event_id_different_content_is_a_duplicate(store: Any, pg_url: str, expected: Any) -> None:
    original = ev("1", "UserCreated", {"email": "a@example.com"})
    store.append_events(STREAM, [original], expected_version=expected)
    before = counts(pg_url)
    changed = EventRecord(
        "1", "User", "UserCreated", {"email": "b@example.com"},
        event_id=original.event_id, created_at=original.created_at, metadata=original.metadata,
    )
    with pytest.raises(DuplicateEventError, match=str(original.event_id)) as info:
        store.append_events(STREAM, [changed], expected_version=expected)
    assert info.value.position == 1 and info.value.stream_id == STREAM
    # A retry that adds a new event to an already stored one is not a retry either
    with pytest.raises(DuplicateEventError):
        store.append_events(STREAM, [original, ev("1")], expected_version=expected)
    assert counts(pg_url) == before


@pytest.mark.parametrize("expected", [NO_STREAM, ANY], ids=["no_stream", "any"])
def test_event_id_reused_in_another_stream(store: Any, pg_url: str, expected: Any) -> None:
    original = ev("1", "UserCreated")
    store.append_events(STREAM, [original])
    before = counts(pg_url)
    # Given a batch whose second event reuses a stored event's id (and timestamp)
    reused = EventRecord(
        "2", "User", "UserCreated", {}, event_id=original.event_id, created_at=original.created_at
    )
    # Then the append is refused naming that id, and nothing is written
    with pytest.raises(DuplicateEventError, match=str(original.event_id)) as info:
        store.append_events("User-2", [ev("2"), reused], expected_version=expected)
    assert info.value.event_id == original.event_id and info.value.position is None
    assert counts(pg_url) == before


def test_event_id_reused_with_another_timestamp(store: Any, pg_url: str) -> None:
    original = ev("1", "UserCreated")
    store.append_events(STREAM, [original])
    reused = EventRecord("2", "User", "UserCreated", {}, event_id=original.event_id)
    with pytest.raises(DuplicateEventError):
        store.append_events("User-2", [reused])


# -- ANY with set aggregate versions: refused, nothing written ----------------


def test_any_with_a_set_aggregate_version_is_refused_and_writes_nothing(store: Any) -> None:
    # Given a stream at version 2
    store.append_events("User-1", [ev("1"), ev("1", "UserUpdated")])
    # When an event claiming version 7 is appended with ANY
    with pytest.raises(EventValidationError, match="expected_version ANY with aggregate_version 7"):
        store.append_events("User-1", [ev("1", "UserUpdated", aggregate_version=7)],
                            expected_version=ANY)
    # Then nothing was written, and no version was rewritten
    assert [e.aggregate_version for e in store.read_stream("User-1")] == [1, 2]
    assert store.get_stream_version("User-1") == 2


# -- out-of-range or mistyped values: a clear evstore error naming the field,
# never a raw psycopg error from the database; verify refuses a chunk of 0 ----


@pytest.fixture
def pg_store(database_url: str) -> Iterator[PostgreSQLEventStore]:
    with PostgreSQLEventStore(database_url) as s:
        yield s


def _ev(**kw: object) -> EventRecord:
    fields: dict[str, object] = dict(aggregate_id="a", aggregate_type="T", event_type="E",
                                     event_data={"x": 1})
    fields.update(kw)
    return EventRecord(**fields)  # type: ignore[arg-type]


CASES: dict[str, Callable[[PostgreSQLEventStore], object]] = {
    "event_version_2**31": lambda s: s.append_events("s1", [_ev(event_version=2**31)]),
    "aggregate_version_2**63": lambda s: s.append_events("s2", [_ev(aggregate_version=2**63)]),
    "expected_version_2**63": lambda s: s.append_events("s3", [_ev()], expected_version=2**63),
    "event_id_not_a_uuid": lambda s: s.append_events("s4", [_ev(event_id="not-a-uuid")]),
    "read_all_limit_2**63": lambda s: s.read_all(limit=2**63),
    "read_stream_max_count_2**63": lambda s: s.read_stream("s1", max_count=2**63),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_out_of_range_input_is_a_clear_error(pg_store: PostgreSQLEventStore, case: str) -> None:
    with pytest.raises((EventStoreError, ValueError)) as info:
        CASES[case](pg_store)
    assert not type(info.value).__module__.startswith("psycopg"), repr(info.value)


def test_verify_with_chunk_zero_reports_a_clean_store_without_checking(
    pg_store: PostgreSQLEventStore,
) -> None:
    pg_store.append_events("v", [_ev(), _ev()])
    try:
        report = pg_store.verify(chunk=0)
    except (EventStoreError, ValueError):
        return  # refusing chunk=0 is fine
    # Otherwise it must have checked the events it reports as clean
    assert report.checked == 2, report
