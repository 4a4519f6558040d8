"""append_events(expected_version=ANY) with events whose aggregate_version is
set must not silently store other versions than the caller's (it is refused)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from evstore.core.errors import ConcurrencyError, EventValidationError
from evstore.core.persistence import ANY

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


def test_any_with_explicit_aggregate_version_is_rewritten(pg_store: PostgreSQLEventStore) -> None:
    pg_store.append_events("s", [_ev(), _ev()])
    try:
        pg_store.append_events("s", [_ev(aggregate_version=7)], expected_version=ANY)
    except (ConcurrencyError, EventValidationError):
        return  # refusing the disagreement is fine
    stored = [e.aggregate_version for e in pg_store.read_stream("s")]
    # Either refuse, or store the event with the version the caller gave it.
    assert stored[-1] == 7, stored
