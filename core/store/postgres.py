"""PostgreSQLEventStore: the storage contract on partitioned PostgreSQL.

Writers serialise per stream (an advisory lock, then a conditional update of
the stream's row), so appends to different streams run in parallel and two
appends to one stream never both win. Readers of the global order read only
rows of transactions older than every transaction still running (see
``docs/global-order.md``), so a checkpointed reader never skips an event that
commits late.

This class is the facade: it builds the database handle and the parts, and
each public method delegates to the one home of its mechanism:

- ``append.py``: append and optimistic concurrency (lock, version check, insert);
- ``reads.py``: streams, aggregates, the global order, ``decode_row``;
- ``integrity.py``: verify, health, metrics;
- ``partitions.py``: month partitions of the events table;
- ``..migrations``: the schema.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

from psycopg_pool import ConnectionPool

from .. import telemetry
from ..config import Settings, load_settings
from ..db import Database, redact
from ..errors import ConcurrencyError, StoreUnavailableError
from ..migrations import apply_migrations, current_version
from . import hooks, integrity
from .append import Appender
from .partitions import MonthPartitions
from .persistence import (
    AppendResult,
    EventRecord,
    EventStore,
    ExpectedVersion,
    HealthReport,
    PartitionInfo,
    Position,
    ReadAllPage,
    StoreMetrics,
    VerifyReport,
)
from .reads import COLUMNS, MAX_PAGE, MAX_POSITION, StoreReads
from .replica import ReplicaReads

__all__ = ["COLUMNS", "MAX_PAGE", "MAX_POSITION", "PostgreSQLEventStore"]


class PostgreSQLEventStore(EventStore):
    """The event store on PostgreSQL.

    Build it from a URL (``PostgreSQLEventStore("postgresql://…")``), from the
    environment (``PostgreSQLEventStore.from_env()``) or around a psycopg pool
    you own (``PostgreSQLEventStore(pool=pool)``).
    """

    def __init__(
        self,
        database_url: str | ConnectionPool | None = None,
        *,
        pool: ConnectionPool | None = None,
        schema_name: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        if isinstance(database_url, ConnectionPool):  # the spec's PostgreSQLEventStore(pool, ...)
            if pool is not None:
                raise TypeError("give the pool once: PostgreSQLEventStore(pool) or (pool=pool)")
            database_url, pool = None, database_url
        self.settings = settings or load_settings(database_url=database_url, schema_name=schema_name)
        if schema_name is not None and schema_name != self.settings.schema_name:
            self.settings = load_settings(
                **{**self.settings.model_dump(), "schema_name": schema_name}
            )
        schema = self.settings.schema_name
        url = database_url or self.settings.database_url
        if pool is None:
            if not url:
                raise StoreUnavailableError(
                    "no database: set DATABASE_URL (or pass a URL or a pool)"
                )
            self.db = Database.open(url, schema, pool_size=self.settings.pool_size)
        else:
            self.db = Database(pool, schema, url=url)
        self._month_partitions = MonthPartitions(self.db)
        self._reads = StoreReads(self)
        self._appender = Appender(self, self._month_partitions, self._reads.known_types)
        # read_all from a hot standby when DATABASE_READ_URL is set (store/replica.py).
        self.replica = (ReplicaReads(self, self.settings.database_read_url)
                        if self.settings.database_read_url else None)

    @property
    def schema(self) -> str:
        return self.db.schema

    @property
    def pool(self) -> ConnectionPool:
        return self.db.pool

    @property
    def url(self) -> str | None:
        return self.db.url

    @classmethod
    def from_env(cls, **overrides: Any) -> PostgreSQLEventStore:
        return cls(settings=load_settings(**overrides))

    def __enter__(self) -> PostgreSQLEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        hooks.close_observer(self)  # the access log's last entries (issue 11)
        if self.replica is not None:
            self.replica.close()
        self.db.close()

    def __repr__(self) -> str:
        where = redact(self.url) if self.url else "a given pool"
        return f"<PostgreSQLEventStore schema={self.schema!r} at {where}>"

    # -- schema -----------------------------------------------------------

    def initialize_schema(self, months_ahead: int = 3) -> None:
        with self.db.connection() as conn:
            apply_migrations(conn, self.schema)
        self.create_partitions_ahead(months_ahead)

    def schema_version(self) -> int:
        with self.db.connection() as conn:
            return current_version(conn, self.schema)

    # -- month partitions -------------------------------------------------

    def ensure_partitions(self, months: set[date]) -> list[date]:
        """Create the month partitions of these months where missing; the ones created."""
        return self._month_partitions.ensure(months)

    def create_partitions_ahead(self, months_ahead: int = 3, now: datetime | None = None) -> list[date]:
        """The current month's partition and ``months_ahead`` after it (the scheduler's job)."""
        return self._month_partitions.create_ahead(months_ahead, now)

    def list_partitions(self, exact: bool = False) -> list[PartitionInfo]:
        return self._month_partitions.list_all(exact)

    # -- append -----------------------------------------------------------

    def append_events(
        self,
        stream_id: str,
        events: Sequence[EventRecord],
        expected_version: ExpectedVersion | None = None,
    ) -> AppendResult:
        start = time.perf_counter()
        outcome = "error"
        try:
            result = self._appender.append_events(stream_id, events, expected_version)
            outcome = "ok"
            return result
        except ConcurrencyError:
            outcome = "conflict"
            raise
        finally:  # the metrics contract (docs/operations.md)
            telemetry.record_append(time.perf_counter() - start, len(events), outcome)

    def validate_events(self, stream_id: str, events: Sequence[EventRecord]) -> None:
        """Every check an append makes before the database, writing nothing.

        Raises the EventValidationError the append would raise (its ``index``
        names the event). A command that appends many batches checks them all
        first, so that a bad line writes nothing.
        """
        self._appender.prepare(stream_id, events)

    # -- reads ------------------------------------------------------------

    def get_stream_version(self, stream_id: str) -> int:
        return self._reads.get_stream_version(stream_id)

    def read_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        max_count: int | None = None,
        backwards: bool = False,
    ) -> list[EventRecord]:
        start = time.perf_counter()
        events = self._reads.read_stream(stream_id, from_version, max_count, backwards)
        telemetry.record_read("read_stream", time.perf_counter() - start, len(events))
        return hooks.observe(self, "read_stream", events, stream_id=stream_id)  # access log

    def iter_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        page_size: int | None = None,
        backwards: bool = False,
    ) -> Iterator[EventRecord]:
        """One stream's events a page at a time: any length in bounded memory."""
        return hooks.observe_iter(self, "iter_stream", self._reads.iter_stream(
            stream_id, from_version, page_size, backwards), stream_id=stream_id)  # access log

    def get_events_for_aggregate(
        self, aggregate_id: str, aggregate_type: str | None = None, from_version: int = 1
    ) -> list[EventRecord]:
        # A uuid.UUID (the spec's ids) is its canonical text, as appends store it.
        events = self._reads.get_events_for_aggregate(str(aggregate_id), aggregate_type, from_version)
        return hooks.observe(self, "read_aggregate", events, aggregate_type=aggregate_type)

    def read_all(
        self,
        after: Position | str | None = None,
        limit: int = 1000,
        event_types: Sequence[str] | None = None,
        aggregate_types: Sequence[str] | None = None,
        check_types: bool = True,
    ) -> ReadAllPage:
        """One page of the global order after ``after`` (see docs/global-order.md).

        ``event_types`` naming a type never appended raises UnknownEventTypeError
        (a typo), unless ``check_types`` is False: a subscriber may wait for
        types that do not exist yet.
        """
        if self.replica is not None:  # a hot standby (DATABASE_READ_URL), its lag on the page
            page = self.replica.read_all(after, limit, event_types, aggregate_types, check_types)
        else:
            start = time.perf_counter()
            page = self._reads.read_all(after, limit, event_types, aggregate_types, check_types)
            telemetry.record_read("read_all", time.perf_counter() - start, len(page.events))
        events = hooks.observe(self, "read_all", page.events)  # access log, consent (issue 11)
        return page if events is page.events else dataclasses.replace(page, events=events)

    def iter_all(
        self, after: Position | None = None, batch_size: int | None = None, **filters: Any
    ) -> Iterator[EventRecord]:
        """Every event after a checkpoint, page by page, up to the current head."""
        return hooks.observe_iter(self, "iter_all", self._reads.iter_all(after, batch_size, **filters))

    def known_event_types(self) -> list[str]:
        return self._reads.known_event_types()

    def check_event_types(self, types: Sequence[str]) -> None:
        """Raise UnknownEventTypeError when a name was never appended (a typo in a filter)."""
        self._reads.check_event_types(types)

    def decode_row(self, row: tuple[Any, ...], verify: bool | None = None) -> EventRecord:
        """An EventRecord from a row selected with ``COLUMNS``; checks the checksum."""
        return self._reads.decode_row(row, verify)

    # -- integrity, health, metrics ----------------------------------------

    def verify(
        self,
        from_position: int | None = None,
        to_position: int | None = None,
        progress: Callable[[int], None] | None = None,
        chunk: int = 5000,
        upgrade: bool = False,
    ) -> VerifyReport:
        """Check the checksum of every event with a global position in the range.

        ``upgrade`` re-signs events still under a version-1 (unkeyed) checksum
        with a version-2 (keyed) one once they check out.
        """
        return integrity.verify(self._reads, from_position, to_position, progress, chunk, upgrade)

    def health(self) -> HealthReport:
        return integrity.health(self._reads, self._month_partitions)

    def metrics(self, exact: bool = False) -> StoreMetrics:
        """Counts and sizes: catalog estimates (cheap, for scrapes) unless ``exact`` (full scans)."""
        return integrity.metrics(self._reads, self._month_partitions, exact)

    # -- plumbing -----------------------------------------------------------

    def access_context(self, accessor: str | None = None, purpose: str | None = None,
                       ip_address: str | None = None, user_agent: str | None = None) -> Any:
        """``with store.access_context(accessor=..., purpose=...):`` who reads and why, for the
        access log of the reads inside (this thread or task). See docs/privacy.md."""
        return hooks.access_context(accessor, purpose, ip_address, user_agent)

    def flush_access_log(self) -> None:
        """Write the access-log entries still buffered in this process now."""
        observer = hooks.observer_of(self)
        if observer is not None:
            observer.flush()

    def connection(self) -> Any:
        """A pooled connection (autocommit) whose driver errors become evstore errors."""
        return self.db.connection()

    def table(self, name: str) -> str:
        """``"schema"."name"`` for SQL text (names are ours, never user input)."""
        return self.db.table(name)
