"""Schema set-up, connection failures and the health check."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from evstore.core.db import configure
from evstore.core.migrations import latest_version
from evstore.core.store.partitions import add_months, month_of
from psycopg_pool import ConnectionPool

from evstore import (
    PostgreSQLEventStore,
    SchemaNotInitializedError,
    StoreUnavailableError,
)

from .helpers import counts, ev, raw


def test_initialize_schema_is_idempotent(store: Any, pg_url: str) -> None:
    store.append_events("User-1", [ev("1")])
    before = counts(pg_url)
    store.initialize_schema()
    store.initialize_schema()
    assert counts(pg_url) == before
    assert store.schema_version() == latest_version()
    assert store.read_stream("User-1")[0].event_type == "UserCreated"


def test_initialize_a_new_schema_from_many_stores_at_once(pg_url: str) -> None:
    # Given 4 stores with their own pools, all pointing at a schema that does not exist
    stores = [PostgreSQLEventStore(pg_url, schema_name="tenant_two") for _ in range(4)]
    barrier = threading.Barrier(len(stores))

    def init(s: Any) -> None:
        barrier.wait()
        s.initialize_schema()

    try:
        # When they all initialise it at the same moment
        with ThreadPoolExecutor(len(stores)) as pool:
            for f in [pool.submit(init, s) for s in stores]:
                f.result(timeout=120)
        # Then there is one set of tables, each migration recorded once
        with raw(pg_url) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'tenant_two' "
                "AND tablename NOT LIKE 'events\\_y%%' ORDER BY 1"
            )]
            migrations = conn.execute(
                "SELECT version, count(*) FROM tenant_two.schema_migrations GROUP BY 1 ORDER BY 1"
            ).fetchall()
            default_tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'events' "
                "AND tablename NOT LIKE 'events\\_y%%' ORDER BY 1"
            )]
        assert tables == default_tables and "events" in tables and "streams" in tables
        assert migrations == [(v, 1) for v in range(1, latest_version() + 1)]
        # And the new schema works, separately from the default one
        stores[0].append_events("User-1", [ev("1")])
        assert stores[1].get_stream_version("User-1") == 1
        assert counts(pg_url)["events"] == 0
        assert all(s.health().ok for s in stores)
    finally:
        for s in stores:
            s.close()


def test_health_ok(store: Any) -> None:
    report = store.health()
    assert report.ok
    assert [c.name for c in report.checks] == ["database", "schema", "partitions"]
    assert "PostgreSQL" in report.checks[0].detail


def test_health_reports_a_missing_schema(pg_url: str) -> None:
    # Given a reachable database where this schema was never initialised
    with PostgreSQLEventStore(pg_url, schema_name="never_initialised") as store:
        report = store.health()
        assert not report.ok
        checks = {c.name: c for c in report.checks}
        assert checks["database"].ok and not checks["schema"].ok
        assert "never_initialised" in checks["schema"].detail
        assert "evstore init" in checks["schema"].detail
        # And using it fails with a clear error rather than a driver exception
        with pytest.raises(SchemaNotInitializedError, match="never_initialised"):
            store.read_stream("User-1")
        with pytest.raises(SchemaNotInitializedError, match="never_initialised"):
            store.append_events("User-1", [ev("1")])


def test_health_reports_missing_partitions(store: Any, pg_url: str) -> None:
    nxt = add_months(month_of(datetime.now(UTC)), 1)
    with raw(pg_url) as conn:
        conn.execute(f"DROP TABLE events.events_y{nxt.year:04d}m{nxt.month:02d}")
    report = store.health()
    partitions = {c.name: c for c in report.checks}["partitions"]
    assert not report.ok and not partitions.ok
    assert f"{nxt.year:04d}-{nxt.month:02d}" in partitions.detail
    store.create_partitions_ahead()
    assert store.health().ok


@pytest.mark.timeout(30)
def test_unreachable_database_fails_fast_and_clearly() -> None:
    # Given a URL where nothing listens (port 1), with a password in it
    url = "postgresql://evstore:s3cret@127.0.0.1:1/evstore"
    # Then building the store fails at once with a message naming the server
    with pytest.raises(StoreUnavailableError, match=r"cannot connect to .*127\.0\.0\.1:1") as info:
        PostgreSQLEventStore(url)
    assert "s3cret" not in str(info.value)
    assert "\n" not in str(info.value)


def test_wrong_database_name_fails_clearly(pg_url: str) -> None:
    url = urlunsplit(urlsplit(pg_url)._replace(path="/no_such_database_here"))
    with pytest.raises(StoreUnavailableError, match="no_such_database_here"):
        PostgreSQLEventStore(url)


def test_health_when_the_database_goes_away(pg_url: str) -> None:
    # Given a working store on a pool of our own that waits 2 s (not 30) for a connection
    pool = ConnectionPool(pg_url, kwargs={"autocommit": True}, configure=configure, timeout=2,
                          open=False)
    pool.open(wait=True)
    store = PostgreSQLEventStore(pool=pool)
    try:
        assert store.health().ok
        # When its database is dropped under it
        name = urlsplit(pg_url).path.lstrip("/")
        admin = urlunsplit(urlsplit(pg_url)._replace(path="/postgres"))
        with raw(admin) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        # Then health says the database is not reachable, without raising
        report = store.health()
        assert not report.ok
        assert report.checks[0].name == "database" and not report.checks[0].ok
        # And an append fails with our error, not a driver one
        with pytest.raises(StoreUnavailableError):
            store.append_events("User-1", [ev("1")])
    finally:
        pool.close(timeout=1)
