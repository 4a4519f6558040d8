"""A caller sees its own committed append at once: in read_all and in queries.

write_horizon() counts, to be safe, a transaction that was running at the
statement's snapshot and ended before it read pg_locks: it cannot tell whether
that one appended here. Such a transaction, anywhere in the cluster, used to
hide a caller's just-committed append from its next read_all or query (a query
test failed in CI this way). The horizon's statement now says when its horizon
is such a transaction (it has ended), and the read is made again.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from evstore.core.query import EventQueryService, EventSearchCriteria, f
from evstore.workers.pool import wait_for
from psycopg.conninfo import make_conninfo

from .helpers import ev


def test_a_horizon_held_by_an_ended_transaction_says_so(store: Any) -> None:
    read_horizon = store.db.sql("store", "read_horizon")
    with psycopg.connect(store.url, autocommit=True) as reader, \
            psycopg.connect(make_conninfo(store.url, dbname="postgres")) as other:
        # Given a transaction of another database with an id, running...
        (xid,) = other.execute("SELECT pg_current_xact_id()::text").fetchone()  # type: ignore[misc]
        # ...and a newer one committed (so the first is in a snapshot's running list,
        # below its xmax: the newest completed transaction + 1)...
        reader.execute("SELECT pg_current_xact_id()")
        # ...when a reader's snapshot is taken (REPEATABLE READ keeps that snapshot)...
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT 1")
        # ...and ending before the horizon is read
        other.commit()
        horizon, ended = reader.execute(read_horizon).fetchone()  # type: ignore[misc]
        reader.execute("COMMIT")
        # Then the horizon is held at or below it, counted to be safe (another
        # transaction that ended likewise may be older), and it says it ended
        assert int(horizon) <= int(xid) and ended is True
        # And read again in new statements, the horizon is past it
        assert store.db.horizon(reader) > int(xid)


def test_a_horizon_held_by_a_running_append_is_not_ended(store: Any) -> None:
    read_horizon = store.db.sql("store", "read_horizon")
    with psycopg.connect(store.url) as slow, psycopg.connect(store.url, autocommit=True) as reader:
        # Given an append in flight (the store's append lock and an id), and a later commit
        slow.execute(store.db.sql("store", "lock_stream"), {"lock_key": "events:User-slow"})
        (slow_xid,) = slow.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()  # type: ignore[misc]
        store.append_events("User-1", [ev("1")])
        # Then the horizon, once no other transaction that ended is older (another
        # test process's may be, for a moment), is that append, and not "ended"
        row = wait_for(lambda: (r := reader.execute(read_horizon).fetchone()) and int(r[0]) == slow_xid
                       and r, timeout=30, what="the horizon to be the running append")
        assert row[1] is False
        # and re-reading never passes it
        assert store.db.horizon(reader) == slow_xid
        slow.rollback()


def test_own_appends_are_seen_at_once_while_other_transactions_come_and_go(store: Any) -> None:
    service = EventQueryService(store)
    stop = threading.Event()
    churned = [0]

    def churn() -> None:
        # Short transactions with ids in another database, one after another: each
        # may be in a reader's snapshot and end before the horizon reads pg_locks.
        with psycopg.connect(make_conninfo(store.url, dbname="postgres")) as conn:
            while not stop.is_set():
                conn.execute("SELECT pg_current_xact_id(), pg_sleep(0.0005)")
                conn.commit()
                churned[0] += 1

    threads = [threading.Thread(target=churn) for _ in range(2)]
    for t in threads:
        t.start()
    misses: list[str] = []
    checkpoint = [store.read_all(limit=1000).checkpoint]

    def by_read_all(aggregate_id: str, _: int) -> int:
        page = store.read_all(after=checkpoint[0], limit=1000)
        checkpoint[0] = page.checkpoint  # (an event missed here stays missed: counted)
        return sum(e.aggregate_id == aggregate_id for e in page.events)

    def by_query(aggregate_id: str, _: int) -> int:
        found, _m = service.query_events(EventSearchCriteria(aggregate_ids=[aggregate_id]),
                                         plan=False, use_cache=False)
        return len(found.events)

    def by_data_query(aggregate_id: str, n: int) -> int:  # pages in one REPEATABLE READ
        found, _m = service.query_events(
            EventSearchCriteria(aggregate_ids=[aggregate_id], where=f("data.n") == n),
            plan=False, use_cache=False)
        return len(found.events)

    try:
        # Each read comes right after its own append (a later read would find the
        # racing transactions long ended)
        for i in range(150):
            for kind, read in (("read_all", by_read_all), ("query", by_query),
                               ("data query", by_data_query)):
                aggregate_id = f"ryw-{kind}-{i}".replace(" ", "-")
                store.append_events(f"User-{aggregate_id}", [ev(aggregate_id, data={"n": i})])
                if read(aggregate_id, i) != 1:
                    misses.append(f"{kind} right after append {i}")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert churned[0] > 150, "the other transactions did not run: nothing was tested"
    assert misses == []
