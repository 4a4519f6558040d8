"""Queries stop at the global-order horizon: never an event above a gap (issue 12).

The page's statement computes the horizon itself (page_at_horizon), in the
snapshot its rows are read in; a transaction that appended and is still open
holds every later event back, on the one-page path (no data predicate), the
paged path (a data predicate, rechecked) and through the cache.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from evstore.core.query import EventQueryService, EventSearchCriteria, f
from evstore.workers.pool import wait_for

from tests.integration.core.helpers import ev, raw
from tests.integration.core.test_global_order import _insert_late


def test_no_event_above_an_open_appending_transaction(store: Any, pg_url: str) -> None:
    service = EventQueryService(store)
    early = ev("early", "Seen", {"k": "v"})
    store.append_events("Seen-early", [early])
    plain = EventSearchCriteria(event_types=["Seen"], limit=50)
    data = EventSearchCriteria(where=f("data.k") == "v", limit=50)
    desc = EventSearchCriteria(event_types=["Seen"], limit=50, order="desc")
    for c in (plain, data, desc):  # cached before the gap opens
        assert [e.event_id for e in service.query_events(c)[0].events] == [early.event_id]

    late = ev("late", "Seen", {"k": "v"}, created_at=datetime.now(UTC))
    with raw(pg_url, autocommit=False) as slow:
        # Given a transaction that wrote an event and stays open
        xid = int(slow.execute("SELECT pg_current_xact_id()::text").fetchone()[0])
        _insert_late(slow, late, "Seen-late")
        # When later transactions append and commit
        after = [ev(f"after-{i}", "Seen", {"k": "v"}) for i in range(5)]
        for i, e in enumerate(after):
            assert store.append_events(f"Seen-after-{i}", [e]).transaction_id > xid
        # Then no query returns them, cached or not, and the horizon stays at the gap
        for c in (plain, data, desc):
            for use_cache in (True, False):
                result, metrics = service.query_events(c, use_cache=use_cache)
                assert [e.event_id for e in result.events] == [early.event_id], (c, use_cache)
                assert 0 < metrics.horizon <= xid
        slow.commit()

    # When it commits: every event, in the global order, cached equal to uncached
    wanted = [early.event_id, late.event_id] + [e.event_id for e in after]
    for c in (plain, data, desc):
        def complete(c: Any = c) -> Any:  # other sessions may hold the horizon a moment
            answer = service.query_events(c)
            return answer if len(answer[0].events) == len(wanted) else None

        result, metrics = wait_for(complete, 6, interval=0.01, what="every event below the horizon")
        order = wanted if c.order == "asc" else wanted[::-1]
        assert [e.event_id for e in result.events] == order
        assert result.events == service.query_events(c, use_cache=False)[0].events
        assert metrics.horizon > xid


def test_the_statement_horizon_reads_the_statement_s_snapshot(store: Any, pg_url: str) -> None:
    # The page asks write_horizon() inside its own statement: that is one snapshot
    # only because the function is STABLE (a VOLATILE one takes a newer snapshot
    # than the statement's rows under READ COMMITTED).
    with raw(pg_url) as conn:
        (volatility,) = conn.execute(
            "SELECT provolatile FROM pg_proc WHERE oid = 'events.write_horizon()'::regprocedure"
        ).fetchone()
    assert volatility == "s"
    here = store.db.sql("query", "statement_horizon").rstrip(";")
    store.append_events("Seen-1", [ev("1", "Seen")])
    with raw(pg_url, autocommit=False) as slow:
        # an appender held open keeps the horizon at or below its transaction
        xid = int(slow.execute("SELECT pg_current_xact_id()::text").fetchone()[0])
        _insert_late(slow, ev("late", "Seen", created_at=datetime.now(UTC)), "Seen-late")
        store.append_events("Seen-2", [ev("2", "Seen")])
        with raw(pg_url) as conn:
            (inline,) = conn.execute(f"SELECT h.x::text FROM ({here}) h").fetchone()
        assert int(inline) <= xid
        slow.rollback()
