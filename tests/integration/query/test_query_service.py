"""EventQueryService on a real store: errors, injection, guard rails, partitions, cache, search, explain."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from evstore.core.config import load_settings
from evstore.core.errors import QueryError, QueryLimitError, UnknownEventTypeError
from evstore.core.query import EventQueryService, EventSearchCriteria, Leaf, Not, f, text
from evstore.core.query.compiler import compile_sql
from evstore.core.store.persistence import EventMetadata, EventRecord

from evstore import PostgreSQLEventStore

from .conftest import START

HOSTILE = ["'; DROP TABLE events.events; --", "x' OR '1'='1", "%(x)s", "%s", "$1", "\\", "\"",
           "{a,b}", "$.a ? (@ == 1)", "') OR true --", "-- ", "/*", "é😀", "a.b", ":name"]


def event(i: int, data: dict[str, Any], user: str = "u1", at: datetime = START,
          etype: str = "UserCreated") -> EventRecord:
    return EventRecord(aggregate_id=f"p{i}", aggregate_type="User", event_type=etype,
                       event_data=data, metadata=EventMetadata(user_id=user), created_at=at)


def count_events(store: Any) -> int:
    return sum(1 for _ in store.iter_all(None, 1000))


@pytest.mark.parametrize("build", [
    lambda: Leaf("eq", "body.email", "x"),          # unknown root
    lambda: Leaf("like", "data.email", "x"),        # unknown operator
    lambda: Leaf("eq", "data..email", "x"),         # malformed path
    lambda: Leaf("eq", "data.", "x"),
    lambda: Leaf("eq", "event_type.x", "x"),        # a column has no sub-fields
    lambda: Leaf("eq", "event_type", 3),            # a number for a text column
    lambda: Leaf("lt", "data.n", None),
    lambda: Leaf("in", "data.n", ()),
    lambda: Leaf("eq", "data.n", {"a": 1}),         # not a scalar
    lambda: Leaf("jsonpath", "data.n", ("exists", "$.a")),
    lambda: EventSearchCriteria(event_types="UserCreated"),
    lambda: EventSearchCriteria(limit=0),
    lambda: EventSearchCriteria(order="sideways"),
    lambda: EventSearchCriteria(from_timestamp=datetime(2026, 1, 1)),  # naive
    lambda: EventSearchCriteria(where="data.email == 'x'"),  # a string is not a predicate
    lambda: EventSearchCriteria(data=f("metadata.user_id") == "u1"),
    lambda: EventSearchCriteria(extra={"colour": "red"}),
])
def test_mistakes_are_clear_errors_never_dropped_filters(build: Any) -> None:
    with pytest.raises(QueryError):
        build()


def test_values_and_paths_never_become_sql_text(query_store: Any) -> None:
    store, everything = query_store
    service = EventQueryService(store)
    for bad in HOSTILE:
        c = EventSearchCriteria(
            aggregate_ids=[bad], event_types=[bad, "T1"], stream_ids=[bad], user_id=bad,
            correlation_id=bad, causation_id=bad,
            where=Not(f(f"data.{bad.replace('.', '_') or 'k'}") == bad) if bad.strip() else None)
        sql, params = compile_sql(service.statement(c, 1, (1, 2), 10))
        if len(bad) > 3:
            assert bad not in sql, (bad, sql)
        assert any(bad == v or (isinstance(v, list) and bad in v) for v in params.values())
        # An event type never appended is refused by name (a typo in a filter) ...
        with pytest.raises(UnknownEventTypeError) as refused:
            service.query_events(c, plan=False, use_cache=False)
        assert refused.value.unknown == [bad]
        # ... and every other hostile value is data: nothing is named like that.
        result, _ = service.query_events(replace(c, event_types=["T1"]), plan=False, use_cache=False)
        assert result.events == []
        # In a predicate of each kind, in path and value positions: data, or a clear refusal.
        for leaf in (lambda b=bad: f(f"metadata.{b}") == b, lambda b=bad: Leaf("in", "data.email", (b,)),
                     lambda b=bad: f("data.email").startswith(b), lambda b=bad: text(b),
                     lambda b=bad: f("data").jsonpath(b), lambda b=bad: f("data").jsonpath(b, "match"),
                     lambda b=bad: Leaf("lt", "event_type", b)):
            try:
                service.query_events(EventSearchCriteria(where=leaf()), plan=False, use_cache=False)
            except QueryError:
                pass
        with pytest.raises(QueryError):
            service.query_events(EventSearchCriteria(after=bad), use_cache=False)
    assert count_events(store) == len(everything)  # nothing was dropped or changed


def test_malformed_jsonpath_and_foreign_cursor_are_refused(query_store: Any) -> None:
    store, _ = query_store
    service = EventQueryService(store)
    with pytest.raises(QueryError, match="malformed SQL/JSON path"):
        service.query_events(EventSearchCriteria(where=f("data").jsonpath("$.a ? (")))
    page, _ = service.query_events(EventSearchCriteria(event_types=["T1"], limit=3))
    assert page.next_cursor
    with pytest.raises(QueryError, match="another query"):
        service.query_events(EventSearchCriteria(event_types=["T2"], after=page.next_cursor))


def test_jsonpath_sees_compressed_events_too(query_store: Any) -> None:
    store, everything = query_store
    service = EventQueryService(store)
    c = EventSearchCriteria(where=f("data").jsonpath("$.nested.deep ? (@.v >= 4)"), limit=100_000)
    got = {e.event_id for e in service.query_events(c, use_cache=False)[0].events}
    want = {e.event_id for e in everything
            if isinstance(e.event_data.get("nested"), dict) and e.event_data["nested"]["deep"]["v"] >= 4}
    assert got == want and any(e.compression != "none" for e in everything if e.event_id in got)
    match = EventSearchCriteria(where=f("data").jsonpath("$.n > 25", "match"), limit=100_000)
    got = {e.event_id for e in service.query_events(match, use_cache=False)[0].events}
    assert got == {e.event_id for e in everything if e.event_data["n"] > 25}


def test_partitions_pruned_and_an_unbounded_query_says_so(query_store: Any) -> None:
    store, _ = query_store
    service = EventQueryService(store)
    months = [p.name for p in store.list_partitions()]
    _, wide = service.query_events(EventSearchCriteria(event_types=["T1"]), use_cache=False)
    assert set(wide.partitions_scanned) == set(months) and not wide.partitions_pruned
    assert any("every month partition" in w for w in wide.warnings)
    feb = EventSearchCriteria(event_types=["T1"], from_timestamp=datetime(2026, 2, 3, tzinfo=UTC),
                              to_timestamp=datetime(2026, 2, 20, tzinfo=UTC))
    result, narrow = service.query_events(feb, use_cache=False)
    assert narrow.partitions_scanned == ["events_y2026m02"]
    assert len(narrow.partitions_pruned) == len(months) - 1
    assert not narrow.warnings and result.events and narrow.plan_summary


def test_row_budget_and_statement_timeout(query_store: Any) -> None:
    store, _ = query_store
    small = load_settings(**{**store.settings.model_dump(), "query_row_budget": 50})
    tight = PostgreSQLEventStore(pool=store.db.pool, settings=small)
    with pytest.raises(QueryLimitError, match="EVENT_STORE_QUERY_ROW_BUDGET"):
        EventQueryService(tight).query_events(EventSearchCriteria(where=f("data.n") > 1000, limit=10))
    quick = load_settings(**{**store.settings.model_dump(), "query_timeout_ms": 200})
    hold = threading.Event()
    # A lock held elsewhere makes the query wait: the timeout, not luck, ends it.
    with psycopg.connect(store.db.url or "", autocommit=False) as other:
        other.execute("LOCK TABLE events.events IN ACCESS EXCLUSIVE MODE")
        hold.set()
        with pytest.raises(QueryLimitError, match="EVENT_STORE_QUERY_TIMEOUT_MS"):
            EventQueryService(PostgreSQLEventStore(pool=store.db.pool, settings=quick)).query_events(
                EventSearchCriteria(event_types=["T1"]), plan=False)
        other.rollback()


def test_the_cache_is_never_stale(store: Any) -> None:
    service = EventQueryService(store)
    store.append_events("User-p1", [event(1, {"email": "ada@example.com", "n": 1})])
    c = EventSearchCriteria(where=f("data.email") == "ada@example.com")
    first, m1 = service.query_events(c)
    again, m2 = service.query_events(c)
    assert not m1.cache_hit and m2.cache_hit and again.events == first.events
    assert m2.cache_hit_rate > 0
    store.append_events("User-p2", [event(2, {"email": "ada@example.com", "n": 2}, user="u2")])
    after, m3 = service.query_events(c)
    uncached, _ = service.query_events(c, use_cache=False)
    assert not m3.cache_hit and len(after.events) == 2 and after.events == uncached.events
    assert service.invalidate("u2") == 1 and service.invalidate("nobody") == 0
    assert not service.query_events(c)[1].cache_hit


def test_full_text_search_ranked_and_over_compressed_events(database_url: str) -> None:
    settings = load_settings(database_url=database_url, compression="zstd", compression_threshold=300)
    with PostgreSQLEventStore(settings=settings) as s:
        s.append_events("User-p1", [event(1, {"bio": "grace hopper wrote compilers"})])
        s.append_events("User-p2", [event(2, {"bio": "grace " * 5 + "hopper compilers " + "x " * 200})])
        s.append_events("User-p3", [event(3, {"bio": "nothing to see"}, etype="Other")])
        service = EventQueryService(s)
        hits = service.search_ranked("grace hopper", event_types=["UserCreated"])
        assert [e.aggregate_id for e, _ in hits] == ["p2", "p1"]  # p2 repeats the words: ranked first
        assert hits[0][0].compression == "zstd" and hits[0][1] >= hits[1][1]
        assert service.search_event_content('"wrote compilers"')[0].aggregate_id == "p1"
        assert service.search_event_content("grace -hopper") == []
        assert [e.aggregate_id for e in service.search_event_content("u1", limit=1)] == ["p1"]


def test_explain_suggests_a_time_bound_and_the_index_to_add(query_store: Any) -> None:
    store, _ = query_store
    service = EventQueryService(store)
    report = service.explain(EventSearchCriteria(where=f("metadata.source") == "web"), analyze=True)
    assert any("time bound" in s for s in report.suggestions)
    creates = [s for s in report.suggestions if "CREATE INDEX" in s]
    assert len(creates) == len(store.list_partitions())
    assert "ON \"events\".events_y2026m01 ((metadata ->> 'source'))" in creates[0]
    assert "hypopg" in report.text() and report.partitions_scanned
    indexed = service.explain(EventSearchCriteria(user_id="u1", from_timestamp=START,
                                                  to_timestamp=START + timedelta(days=20)))
    assert not [s for s in indexed.suggestions if "CREATE INDEX" in s]
    assert "events_y2026m01" in indexed.partitions_scanned and indexed.partitions_pruned


def test_indexes_reach_partitions_created_later(store: Any) -> None:
    later = datetime(2031, 5, 1, tzinfo=UTC)
    store.create_partitions_ahead(0, now=later)
    with store.db.connection() as conn:
        names = {n for (n,) in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'events' AND tablename = 'events_y2031m05'")}
    joined = " ".join(names)
    for expected in ("event_type, transaction_id", "(metadata ->> 'user_id'::text)",
                     "(metadata ->> 'correlation_id'::text)", "gin (event_data jsonb_path_ops)",
                     "WHERE (payload IS NOT NULL)"):
        assert expected in joined, (expected, joined)


def test_detect_anomalies_over_the_store_with_gauges(store: Any) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    # A steady login a day at 08:00 for a week, then 60 in five minutes for u-9.
    for day in range(1, 7):
        at = now - timedelta(days=day, hours=4)
        store.append_events(f"User-steady-{day}", [event(day, {"ip": "10.0.0.1"}, user="u-1", at=at,
                                                         etype="UserLoggedIn")])
    burst_at = now - timedelta(minutes=7)
    store.append_events("User-u9", [
        EventRecord(aggregate_id="u9", aggregate_type="User", event_type="UserLoggedIn",
                    event_data={"n": i}, metadata=EventMetadata(user_id="u-9"),
                    created_at=burst_at + timedelta(seconds=i)) for i in range(60)])
    registry = CollectorRegistry()
    found = EventQueryService(store).detect_anomalies(
        window=timedelta(days=7), bucket=timedelta(minutes=5), by="metadata.user_id", now=now,
        registry=registry)
    assert [(a.key, a.kind, a.count) for a in found] == [("UserLoggedIn for u-9", "burst", 60)]
    assert found[0].explanation.startswith("UserLoggedIn for u-9: 60 in 5 min")
    text = generate_latest(registry).decode()
    assert 'evstore_query_anomaly_score{key="UserLoggedIn for u-9",kind="burst"}' in text
    by_type = EventQueryService(store).detect_anomalies(window=timedelta(days=7), now=now)
    assert [a.key for a in by_type] == ["UserLoggedIn"]
    with pytest.raises(QueryError):
        EventQueryService(store).detect_anomalies(by="colour")
