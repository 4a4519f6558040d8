"""The database handle every part of the core takes: pool, schema, connections, named SQL.

``Database`` is eventsourcing's datastore beside its recorders: the event store
(``store/``), the readers (``reader/``), snapshots, archives, jobs and privacy
each take one and never borrow a connection from another feature.

- ``connection()`` is a pooled autocommit connection whose driver errors become
  evstore errors in this one place (a missing schema is
  ``SchemaNotInitializedError``, a lost server ``StoreUnavailableError``).
- ``sql(file, name, **fragments)`` is the one way to a statement: the named
  block ``name`` of ``core/sql/<file>.sql`` with ``{schema}`` quoted in.
- ``table(name)`` is ``"schema"."name"`` for the rare statement built at run
  time from validated names.

A wrong DATABASE_URL fails at start-up with the server's own words, not after a
pool time-out (``make_pool`` connects once first).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg.types.numeric import IntLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from . import sql as named_sql
from .errors import PermissionDeniedError, SchemaNotInitializedError, StoreUnavailableError

# How many times a horizon (or a query's first page) is read while its transaction
# ended since the snapshot (Database.horizon): each read races again only if another
# transaction ends inside its statement; the last one's horizon is kept (never unsafe).
HORIZON_READS = 6
XID8_OID = 5069

# Connections closed on purpose (close_on_purpose): the pool's "discarding closed
# connection" warning for them is noise; for a connection lost otherwise it stays.
_CLOSED_ON_PURPOSE: weakref.WeakSet[psycopg.Connection] = weakref.WeakSet()


class _QuietDiscard(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (str(record.msg).startswith("discarding closed connection")
                    and isinstance(args, tuple) and bool(args) and args[0] in _CLOSED_ON_PURPOSE)


logging.getLogger("psycopg.pool").addFilter(_QuietDiscard())


def close_on_purpose(conn: psycopg.Connection) -> None:
    """Close a pooled connection so the pool discards it, without its warning."""
    _CLOSED_ON_PURPOSE.add(conn)
    conn.close()

_SCHEMA_ERRORS = (
    pgerrors.UndefinedTable, pgerrors.InvalidSchemaName, pgerrors.UndefinedColumn,
    pgerrors.UndefinedFunction,
)


def redact(url: str) -> str:
    """The URL (or message) with its passwords hidden: core/redaction.py's one redaction."""
    from .redaction import redact as redact_secrets

    return redact_secrets(url)


def configure(conn: psycopg.Connection) -> None:
    """Every pooled connection: xid8 values as Python ints, timestamps in UTC."""
    conn.adapters.register_loader(XID8_OID, IntLoader)
    conn.execute(named_sql.load("store", "set_utc"))


def probe(url: str, timeout: int = 5) -> None:
    """Connect once, so a bad URL or a down server is reported clearly."""
    try:
        with psycopg.connect(url, connect_timeout=timeout, autocommit=True) as conn:
            conn.execute(named_sql.load("store", "ping"))
    except psycopg.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreUnavailableError(f"cannot connect to {redact(url)}: {detail}") from exc


def make_pool(url: str, *, max_size: int = 10, min_size: int = 1, name: str = "evstore") -> ConnectionPool:
    """An open pool of autocommit connections to ``url``, checked by one connection first."""
    probe(url)
    pool = ConnectionPool(
        url,
        min_size=min(min_size, max_size),
        max_size=max_size,
        kwargs={"autocommit": True},
        configure=configure,
        open=False,
        name=name,
        # A caller waits at most this long for a connection when the server is gone.
        timeout=10,
    )
    pool.open(wait=True, timeout=30)
    return pool


class Database:
    """One PostgreSQL database and the schema of the store's tables in it.

    Build it from a URL (it then owns and closes its pool) or around a pool
    the caller owns.
    """

    def __init__(
        self,
        pool: ConnectionPool,
        schema: str,
        *,
        url: str | None = None,
        owns_pool: bool = False,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.url = url
        self._owns_pool = owns_pool
        self._adopted: weakref.WeakSet[psycopg.Connection] = weakref.WeakSet()
        # The quoted schema, for SQL text on hot paths.
        self.quoted_schema = named_sql.quote_schema(schema)
        self._begin_read_only = named_sql.load("store", "begin_read_snapshot")
        self._commit = named_sql.load("store", "commit")
        self._read_horizon = self.sql("store", "read_horizon")

    @classmethod
    def open(cls, url: str, schema: str, *, pool_size: int = 10) -> Database:
        """A database with a pool of its own (closed by ``close()``)."""
        return cls(make_pool(url, max_size=pool_size), schema, url=url, owns_pool=True)

    def close(self) -> None:
        if self._owns_pool:
            self.pool.close()

    def __repr__(self) -> str:
        where = redact(self.url) if self.url else "a given pool"
        return f"<Database schema={self.schema!r} at {where}>"

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection (autocommit) whose driver errors become evstore errors."""
        try:
            cm = self.pool.connection()
            conn = cm.__enter__()
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(f"database unavailable: {exc}") from exc
        except PoolTimeout as exc:
            raise StoreUnavailableError(f"no database connection available: {exc}") from exc
        try:
            if not self._owns_pool and conn not in self._adopted:
                self._adopt(conn)
            yield conn
        except BaseException as exc:
            cm.__exit__(type(exc), exc, exc.__traceback__)
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        else:
            cm.__exit__(None, None, None)

    def _adopt(self, conn: psycopg.Connection) -> None:
        """A connection of a pool the caller made (the spec's ``PostgreSQLEventStore(pool)``):
        made autocommit and configured as ``make_pool``'s are, once per connection."""
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
            conn.rollback()
        conn.autocommit = True
        configure(conn)
        self._adopted.add(conn)

    def _translate(self, exc: BaseException) -> BaseException:
        if isinstance(exc, _SCHEMA_ERRORS):
            return SchemaNotInitializedError(
                f"the event store schema {self.schema!r} is missing or incomplete: "
                f"run 'evstore init' ({exc.diag.message_primary})"
            )
        if isinstance(exc, pgerrors.InsufficientPrivilege):
            hint = exc.diag.message_hint or (
                "the role this process connects as lacks that right: see 'evstore roles' "
                "and docs/security.md")
            return PermissionDeniedError(f"the database refused: {exc.diag.message_primary} ({hint})")
        if isinstance(exc, psycopg.OperationalError):
            return StoreUnavailableError(f"database unavailable: {exc}")
        return exc

    @contextmanager
    def read_only_snapshot(self, conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
        """One REPEATABLE READ READ ONLY transaction on an autocommit connection.

        Every statement inside (pipelined or not) sees the same snapshot: read_all's
        horizon and rows, a replay's plan, an archive preview's counts.
        """
        conn.execute(self._begin_read_only)
        try:
            yield conn
        finally:
            conn.execute(self._commit)

    def horizon(self, conn: psycopg.Connection) -> int:
        """The write horizon (docs/global-order.md), in its own statement, before a snapshot.

        Read again, up to HORIZON_READS times, while it was set by a transaction that has ended
        since the statement's snapshot (store.sql read_horizon): a caller then sees
        its own just-committed append instead of a conservative, older horizon.
        """
        row: tuple[Any, ...] | None = None
        for _ in range(HORIZON_READS):
            row = conn.execute(self._read_horizon).fetchone()
            if row is None or not row[1]:
                break
        assert row is not None
        return int(row[0])

    def sql(self, file: str, name: str, **fragments: str) -> str:
        """The block ``name`` of ``core/sql/<file>.sql`` for this schema (trusted fragments filled in)."""
        return named_sql.load(file, name, self.schema, **fragments)

    def table(self, name: str) -> str:
        """``"schema"."name"`` for SQL text (names are ours, never user input)."""
        return f"{self.quoted_schema}.{named_sql.quote_schema(name)}"
