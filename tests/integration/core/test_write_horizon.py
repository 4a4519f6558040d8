"""The global-order horizon counts only transactions that can write this store's events.

A transaction left open in another database of the cluster, or in this one on
an unrelated table, used to hold back read_all and every reader (issue 9,
point 4). A slow append to the store must still hold it: no event skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from .helpers import ev, raw


@contextmanager
def open_transaction(url: str) -> Iterator[psycopg.Connection]:
    """A transaction with a transaction id (it wrote something), held open."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TEMP TABLE held (x int)")
        conn.execute("INSERT INTO held VALUES (1)")
        (xid,) = conn.execute("SELECT pg_current_xact_id_if_assigned()").fetchone()  # type: ignore[misc]
        assert xid is not None
        yield conn
        conn.rollback()


def _read_now(store: Any) -> list[Any]:
    """What read_all shows at once (no waiting for the horizon)."""
    return list(store.iter_all())


def test_a_transaction_in_another_database_does_not_hold_readers_back(store: Any) -> None:
    # Given a transaction open in another database of the same cluster
    # (another database of the same server as the store's, whichever server that is)
    with open_transaction(make_conninfo(store.url, dbname="postgres")):
        # When events are appended here after it began
        store.append_events("User-1", [ev("1"), ev("1", "UserUpdated")])
        # Then read_all shows them at once, and its checkpoint passes them
        events = _read_now(store)
        assert [e.event_type for e in events] == ["UserCreated", "UserUpdated"]
        page = store.read_all()
        assert page.at_end and page.checkpoint >= events[-1].position


def test_an_idle_transaction_on_an_unrelated_table_does_not_hold_readers_back(
    store: Any, pg_url: str
) -> None:
    with raw(pg_url) as conn:
        conn.execute("CREATE TABLE unrelated (x int)")
    with open_transaction(pg_url) as held:
        held.execute("INSERT INTO unrelated VALUES (1)")
        store.append_events("User-1", [ev("1")])
        assert len(_read_now(store)) == 1


def test_an_append_in_flight_still_holds_the_horizon(store: Any, pg_url: str) -> None:
    # Given a transaction that took the store's append lock and its id (as an
    # append does, before it inserts), still open
    with psycopg.connect(pg_url) as slow:
        slow.execute(store.db.sql("store", "lock_stream"), {"lock_key": "events:User-slow"})
        (slow_xid,) = slow.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()  # type: ignore[misc]
        # When another append commits after it
        result = store.append_events("User-1", [ev("1")])
        assert result.transaction_id > slow_xid
        # Then read_all does not show it yet: the slow one could still write
        # an event before it in the global order
        page = store.read_all()
        assert page.events == [] and page.checkpoint.transaction_id < slow_xid
        slow.rollback()
    assert len(_read_now(store)) == 1


def test_write_horizon_costs_one_query(store: Any) -> None:
    # The horizon is a function of the schema; it answers with a transaction id
    with store.connection() as conn:
        horizon, ended = conn.execute(store.db.sql("store", "read_horizon")).fetchone()
    assert int(horizon) > 0 and ended in (True, False)
