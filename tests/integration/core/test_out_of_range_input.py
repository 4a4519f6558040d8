"""Out-of-range or mistyped values get a clear evstore error naming the field,
never a raw psycopg error from the database; verify refuses a chunk of 0."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from evstore.core.errors import EventStoreError

from evstore import EventRecord, PostgreSQLEventStore


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
