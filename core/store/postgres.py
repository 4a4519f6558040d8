"""PostgreSQLEventStore: the storage contract on partitioned PostgreSQL.

Writers serialise per stream (an advisory lock, then a conditional update of
the stream's row), so appends to different streams run in parallel and two
appends to one stream never both win. Readers of the global order read only
rows of transactions older than every transaction still running (see
``docs/global-order.md``), so a checkpointed reader never skips an event that
commits late.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg_pool import ConnectionPool

from .. import codecs
from ..config import Settings, load_settings
from ..db import Database, redact
from ..errors import (
    CodecError,
    ConcurrencyError,
    DuplicateEventError,
    EventValidationError,
    IntegrityError,
    StoreUnavailableError,
    UnknownEventTypeError,
)
from ..migrations import apply_migrations, current_version, latest_version
from ..serialization import checksum_of, dumps, encode_json, validate_batch
from ..sql import query, quote_schema
from .partitions import PartitionCache, add_months, create_partition, list_partitions, month_of
from .persistence import (
    ANY,
    NO_STREAM,
    START,
    AppendResult,
    ChecksumMismatch,
    EventMetadata,
    EventRecord,
    EventStore,
    ExpectedVersion,
    HealthCheck,
    HealthReport,
    PartitionInfo,
    Position,
    ReadAllPage,
    StoreMetrics,
    StreamState,
    VerifyReport,
)

COLUMNS = (
    "event_id, aggregate_id, aggregate_type, event_type, event_version, aggregate_version, "
    "stream_id, stream_position, global_position, transaction_id, event_data, payload, "
    "metadata, created_at, stored_at, status, compression, encryption, checksum, "
    "original_size, stored_size"
)
_INSERT_COLUMNS = (
    "event_id, aggregate_id, aggregate_type, event_type, event_version, aggregate_version, "
    "stream_id, stream_position, event_data, payload, metadata, created_at, compression, "
    "checksum, original_size, stored_size"
)
# SQL types of the values of _INSERT_COLUMNS, for the one-statement append.
_ROW_TYPES = ("uuid", "text", "text", "text", "integer", "bigint", "text", "bigint", "jsonb",
              "bytea", "jsonb", "timestamptz", "text", "text", "integer", "integer")
MAX_POSITION = 2**63 - 1
# The largest page read_all returns at once (a page is held in memory).
MAX_PAGE = 1_000_000
# Appends up to this many events use one multi-row INSERT; larger ones use COPY.
COPY_THRESHOLD = 64


@dataclass
class _Prepared:
    event: EventRecord
    data_json: str
    metadata_json: str
    event_data: str | None
    payload: bytes | None
    compression: str
    original_size: int
    stored_size: int


class _Conflict(Exception):
    pass


class _MissingPartition(Exception):
    pass


class PostgreSQLEventStore(EventStore):
    """The event store on PostgreSQL.

    Build it from a URL (``PostgreSQLEventStore("postgresql://…")``), from the
    environment (``PostgreSQLEventStore.from_env()``) or around a psycopg pool
    you own (``PostgreSQLEventStore(pool=pool)``).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        pool: ConnectionPool | None = None,
        schema_name: str | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or load_settings(database_url=database_url, schema_name=schema_name)
        if schema_name is not None and schema_name != self.settings.schema_name:
            self.settings = load_settings(
                **{**self.settings.model_dump(), "schema_name": schema_name}
            )
        self.schema = self.settings.schema_name
        self._q = quote_schema(self.schema)  # the quoted schema, for SQL text on hot paths
        url = database_url or self.settings.database_url
        if pool is None:
            if not url:
                raise StoreUnavailableError(
                    "no database: set DATABASE_URL (or pass a URL or a pool)"
                )
            self.db = Database.open(url, self.schema, pool_size=self.settings.pool_size)
        else:
            self.db = Database(pool, self.schema, url=url)
        self.pool = self.db.pool
        self.url = url
        self._partitions = PartitionCache()
        self._known_types: set[str] = set()
        self._types_checked_at = 0.0
        self._types_lock = threading.Lock()

    @classmethod
    def from_env(cls, **overrides: Any) -> PostgreSQLEventStore:
        return cls(settings=load_settings(**overrides))

    def __enter__(self) -> PostgreSQLEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def __repr__(self) -> str:
        where = redact(self.url) if self.url else "a given pool"
        return f"<PostgreSQLEventStore schema={self.schema!r} at {where}>"

    # -- schema -----------------------------------------------------------

    def initialize_schema(self, months_ahead: int = 3) -> None:
        with self.pool.connection() as conn:
            apply_migrations(conn, self.schema)
        self.create_partitions_ahead(months_ahead)

    def schema_version(self) -> int:
        with self.pool.connection() as conn:
            return current_version(conn, self.schema)

    # -- partitions -------------------------------------------------------

    def ensure_partitions(self, months: set[date]) -> list[date]:
        """Create the partitions of these months where missing; the ones created."""
        missing = self._partitions.missing(months)
        created = []
        if missing:
            with self.connection() as conn:
                for month in sorted(missing):
                    if create_partition(conn, self.schema, month):
                        created.append(month)
            self._partitions.add(missing)
        return created

    def create_partitions_ahead(self, months_ahead: int = 3, now: datetime | None = None) -> list[date]:
        """The current month's partition and ``months_ahead`` after it (the scheduler's job)."""
        first = month_of(now or datetime.now().astimezone())
        months = {add_months(first, i) for i in range(months_ahead + 1)}
        self._partitions.forget(months)
        return self.ensure_partitions(months)

    def list_partitions(self, exact: bool = False) -> list[PartitionInfo]:
        with self.connection() as conn:
            return list_partitions(conn, self.schema, exact=exact)

    # -- append -----------------------------------------------------------

    def append_events(
        self,
        stream_id: str,
        events: Sequence[EventRecord],
        expected_version: ExpectedVersion | None = None,
    ) -> AppendResult:
        batch = list(events)
        validate_batch(stream_id, batch)
        expected = self._expected(batch, expected_version)
        prepared = [self._prepare(i, e) for i, e in enumerate(batch)]
        months = {month_of(e.created_at) for e in batch}
        for _attempt in range(3):
            self.ensure_partitions(months)
            try:
                with self.connection() as conn:
                    return self._append(conn, stream_id, prepared, expected)
            except _MissingPartition:
                # Dropped since we cached it (archival): create it again.
                self._partitions.forget(months)
        raise StoreUnavailableError(f"could not create partitions for {sorted(months)}")

    @staticmethod
    def _expected(batch: list[EventRecord], expected: ExpectedVersion | None) -> int | StreamState:
        first = batch[0].aggregate_version
        if expected is None:
            return first - 1 if first else ANY
        if expected is ANY and first:
            raise EventValidationError(
                f"expected_version ANY with aggregate_version {first} set on the events: "
                "a set aggregate_version asks for an exact expected version; leave it 0 with ANY"
            )
        if isinstance(expected, StreamState):
            if expected is NO_STREAM and first not in (0, 1):
                raise EventValidationError(
                    f"expected no stream, but the first event has aggregate_version {first}"
                )
            return 0 if expected is NO_STREAM else ANY
        if isinstance(expected, bool) or not isinstance(expected, int) or not 0 <= expected < 2**62:
            raise EventValidationError(
                f"expected_version must be an integer from 0 to 2**62-1, ANY or NO_STREAM "
                f"(got {expected!r})"
            )
        if first and first != expected + 1:
            raise EventValidationError(
                f"expected_version {expected} disagrees with the first event's "
                f"aggregate_version {first} (should be {expected + 1})"
            )
        return expected

    def _prepare(self, index: int, event: EventRecord) -> _Prepared:
        data_json = encode_json(event.event_data, "event_data", index)
        metadata = event.metadata if isinstance(event.metadata, EventMetadata) else None
        if metadata is None:
            raise EventValidationError("metadata must be an EventMetadata", index=index)
        metadata_json = encode_json(metadata.to_dict(), "metadata", index)
        raw = data_json.encode()
        codec = self.settings.compression
        if codec != "none" and len(raw) >= self.settings.compression_threshold:
            packed = codecs.compress(codec, raw)
            if len(packed) < len(raw):
                return _Prepared(event, data_json, metadata_json, None, packed, codec,
                                 len(raw), len(packed))
        return _Prepared(event, data_json, metadata_json, data_json, None, "none",
                         len(raw), len(raw))

    def _row(self, stream_id: str, position: int, p: _Prepared) -> tuple[Any, ...]:
        e = p.event
        digest = checksum_of(
            {"event_id": e.event_id, "stream_id": stream_id, "stream_position": position,
             "aggregate_id": e.aggregate_id, "aggregate_type": e.aggregate_type,
             "event_type": e.event_type, "event_version": e.event_version,
             "created_at": e.created_at},
            p.data_json, p.metadata_json,
        )
        return (
            e.event_id, e.aggregate_id, e.aggregate_type, e.event_type, e.event_version,
            position, stream_id, position, p.event_data, p.payload, p.metadata_json,
            e.created_at, p.compression, digest, p.original_size, p.stored_size,
        )

    def _append(
        self, conn: psycopg.Connection, stream_id: str, batch: list[_Prepared], expected: int | StreamState
    ) -> AppendResult:
        first = batch[0].event
        new_types = {p.event.event_type for p in batch} - self._known_types
        params = {
            "lock_key": f"{self.schema}:{stream_id}",
            "stream_id": stream_id,
            "aggregate_id": first.aggregate_id,
            "aggregate_type": first.aggregate_type,
        }
        try:
            if expected is ANY:
                try:
                    result = self._append_any(conn, stream_id, batch, params, new_types)
                except pgerrors.UniqueViolation:
                    # Not a retry (that is seen under the lock): an id used in another stream.
                    raise self._reused_id(conn, stream_id, batch) from None
            else:
                assert isinstance(expected, int)
                try:
                    result = self._append_exact(conn, stream_id, batch, expected, params, new_types)
                except (_Conflict, pgerrors.UniqueViolation):
                    # A lost race on the stream's version, or (primary key) the
                    # same event stored before: a retry, or a reused event id.
                    return self._resolve_conflict(conn, stream_id, batch, expected)
        except pgerrors.CheckViolation as exc:
            if exc.diag.constraint_name is None:  # "no partition of relation … found for row"
                raise _MissingPartition() from exc
            raise
        self._known_types.update(new_types)
        return result

    def _append_exact(
        self, conn: psycopg.Connection, stream_id: str, batch: list[_Prepared], expected: int,
        params: dict[str, Any], new_types: set[str],
    ) -> AppendResult:
        n = len(batch)
        params = {**params, "expected": expected, "new_version": expected + n}
        stream_sql = query("create_stream" if expected == 0 else "advance_stream", self.schema)
        if n > COPY_THRESHOLD:
            with conn.transaction():
                conn.execute(query("lock_stream", self.schema), params)
                if conn.execute(stream_sql, params).fetchone() is None:
                    raise _Conflict()
                positions, tx = self._write_copy(conn, stream_id, batch, expected, new_types)
            return AppendResult(stream_id, expected + n, positions, tx)
        # One statement, one round trip, its own (autocommit) transaction.
        sql_text, args = self._one_trip_append(stream_id, batch, expected, params, new_types)
        rows = sorted(conn.execute(sql_text, args).fetchall())
        if not rows:
            raise _Conflict()
        return AppendResult(stream_id, expected + n, [r[1] for r in rows], rows[0][2])

    def _one_trip_append(
        self, stream_id: str, batch: list[_Prepared], expected: int, params: dict[str, Any],
        new_types: set[str],
    ) -> tuple[str, dict[str, Any]]:
        args = dict(params)
        placeholders = []
        for i, p in enumerate(batch):
            values = self._row(stream_id, expected + i + 1, p)
            names = []
            for j, (value, cast) in enumerate(zip(values, _ROW_TYPES, strict=True)):
                key = f"r{i}_{j}"
                args[key] = value
                names.append(f"%({key})s::{cast}")
            placeholders.append("(" + ",".join(names) + ")")
        stream_write = query("append_stream_create" if expected == 0 else "append_stream_advance",
                             self.schema)
        types_cte = ""
        if new_types:
            types_cte = query("append_types_cte", self.schema)
            args["new_types"] = sorted(new_types)
        sql_text = query("append_exact", self.schema, stream_write=stream_write, types_cte=types_cte,
                         columns=_INSERT_COLUMNS, rows=",".join(placeholders))
        return sql_text, args

    def _append_any(
        self, conn: psycopg.Connection, stream_id: str, batch: list[_Prepared],
        params: dict[str, Any], new_types: set[str],
    ) -> AppendResult:
        n = len(batch)
        ids = [p.event.event_id for p in batch]
        with conn.transaction():
            conn.execute(query("lock_stream", self.schema), params)
            row = conn.execute(query("stream_head", self.schema), [stream_id]).fetchone()
            version = 0 if row is None else int(row[0])
            if row is not None and (row[1], row[2]) != (params["aggregate_id"], params["aggregate_type"]):
                raise self._foreign_aggregate(stream_id, row, batch)
            if row is not None:
                stored = conn.execute(query("stream_event_ids", self.schema), [stream_id, ids]).fetchall()
                if stored:
                    return self._deduplicated(stream_id, batch, stored, version)
            params = {**params, "expected": version, "new_version": version + n}
            stream_sql = query("create_stream" if version == 0 else "advance_stream", self.schema)
            if conn.execute(stream_sql, params).fetchone() is None:  # impossible under the lock
                raise StoreUnavailableError(f"stream {stream_id!r} changed under its lock")
            if n > COPY_THRESHOLD:
                positions, tx = self._write_copy(conn, stream_id, batch, version, new_types)
            else:
                rows = self._write_values(conn, stream_id, batch, version, new_types).fetchall()
                positions, tx = [r[0] for r in rows], rows[0][1]
        return AppendResult(stream_id, version + n, positions, tx)

    def _write_values(
        self, conn: psycopg.Connection, stream_id: str, batch: list[_Prepared], base: int,
        new_types: set[str],
    ) -> psycopg.Cursor[Any]:
        for event_type in new_types:
            conn.execute(query("remember_event_type", self.schema), [event_type])
        row = "(%s,%s,%s,%s,%s,%s,%s,%s,%s::jsonb,%s,%s::jsonb,%s,%s,%s,%s,%s)"
        placeholders = ",".join([row] * len(batch))
        args: list[Any] = []
        for i, p in enumerate(batch):
            args.extend(self._row(stream_id, base + i + 1, p))
        cur = conn.cursor()
        cur.execute(
            f"INSERT INTO {self._q}.events ({_INSERT_COLUMNS}) VALUES {placeholders} "
            "RETURNING global_position, transaction_id",
            args,
        )
        return cur

    def _write_copy(
        self, conn: psycopg.Connection, stream_id: str, batch: list[_Prepared], base: int,
        new_types: set[str],
    ) -> tuple[list[int], int]:
        for event_type in new_types:
            conn.execute(query("remember_event_type", self.schema), [event_type])
        positions = sorted(
            r[0] for r in conn.execute(query("allocate_positions", self.schema), [len(batch)])
        )
        with conn.cursor().copy(
            f"COPY {self._q}.events ({_INSERT_COLUMNS}, global_position) FROM STDIN"
        ) as copy:
            for i, p in enumerate(batch):
                copy.write_row((*self._row(stream_id, base + i + 1, p), positions[i]))
        tx = conn.execute("SELECT pg_current_xact_id()").fetchone()
        assert tx is not None
        return positions, int(tx[0])

    def _resolve_conflict(
        self, conn: psycopg.Connection, stream_id: str, batch: list[_Prepared], expected: int
    ) -> AppendResult:
        row = conn.execute(query("stream_head", self.schema), [stream_id]).fetchone()
        actual = 0 if row is None else int(row[0])
        first = batch[0].event
        if row is not None and (row[1], row[2]) != (first.aggregate_id, first.aggregate_type):
            raise self._foreign_aggregate(stream_id, row, batch)
        ids = [p.event.event_id for p in batch]
        stored = conn.execute(query("stream_event_ids", self.schema), [stream_id, ids]).fetchall()
        if stored:
            return self._deduplicated(stream_id, batch, stored, actual, expected)
        if actual == expected:
            raise self._reused_id(conn, stream_id, batch)
        raise ConcurrencyError(stream_id, NO_STREAM if expected == 0 else expected, actual)

    def _deduplicated(
        self, stream_id: str, batch: list[_Prepared], stored: list[tuple[Any, ...]],
        version: int, expected: int | None = None,
    ) -> AppendResult:
        """The same events are stored already: a retry. Accept it if they match exactly."""
        by_id = {row[1]: row for row in stored}
        start = int(stored[0][0])
        for i, p in enumerate(batch):
            row = by_id.get(p.event.event_id)
            position = start + i
            if row is None or int(row[0]) != position:
                first_stored = stored[0]
                raise DuplicateEventError(stream_id, first_stored[1], int(first_stored[0]))
            if expected is not None and position != expected + i + 1:
                raise DuplicateEventError(stream_id, row[1], int(row[0]))
            if row[2] != self._row(stream_id, position, p)[13]:
                raise DuplicateEventError(stream_id, row[1], int(row[0]))
        return AppendResult(
            stream_id, start + len(batch) - 1, [int(r[3]) for r in stored], int(stored[-1][4]),
            deduplicated=True,
        )

    def _reused_id(
        self, conn: psycopg.Connection, stream_id: str, batch: list[_Prepared]
    ) -> DuplicateEventError:
        ids = [p.event.event_id for p in batch]
        row = conn.execute(
            f"SELECT event_id FROM {self._q}.events WHERE event_id = ANY(%s) LIMIT 1", [ids]
        ).fetchone()
        return DuplicateEventError(stream_id, ids[0] if row is None else row[0], None)

    @staticmethod
    def _foreign_aggregate(
        stream_id: str, row: tuple[Any, ...], batch: list[_Prepared]
    ) -> EventValidationError:
        e = batch[0].event
        return EventValidationError(
            f"stream {stream_id!r} belongs to aggregate {row[2]}/{row[1]}, "
            f"not {e.aggregate_type}/{e.aggregate_id}"
        )

    # -- reads ------------------------------------------------------------

    def get_stream_version(self, stream_id: str) -> int:
        with self.connection() as conn:
            row = conn.execute(query("stream_head", self.schema), [stream_id]).fetchone()
        return 0 if row is None else int(row[0])

    def read_stream(
        self,
        stream_id: str,
        from_version: int | None = None,
        max_count: int | None = None,
        backwards: bool = False,
    ) -> list[EventRecord]:
        if max_count is not None and not 0 <= max_count < 2**62:
            raise ValueError(f"max_count must be from 0 to 2**62-1 (got {max_count})")
        if from_version is None:
            from_version = MAX_POSITION if backwards else 1
        if not 0 <= from_version <= MAX_POSITION:
            raise ValueError(f"from_version must be from 0 to 2**63-1 (got {from_version})")
        op, order = ("<=", "DESC") if backwards else (">=", "ASC")
        sql_text = (
            f"SELECT {COLUMNS} FROM {self._q}.events WHERE stream_id = %s "
            f"AND stream_position {op} %s ORDER BY stream_position {order}"
        )
        args: list[Any] = [stream_id, from_version]
        if max_count is not None:
            sql_text += " LIMIT %s"
            args.append(max_count)
        with self.connection() as conn:
            rows = conn.execute(sql_text, args).fetchall()
        return [self.decode_row(r) for r in rows]

    def get_events_for_aggregate(
        self, aggregate_id: str, aggregate_type: str | None = None, from_version: int = 1
    ) -> list[EventRecord]:
        sql_text = f"SELECT stream_id FROM {self._q}.streams WHERE aggregate_id = %s"
        args: list[Any] = [aggregate_id]
        if aggregate_type is not None:
            sql_text += " AND aggregate_type = %s"
            args.append(aggregate_type)
        with self.connection() as conn:
            streams = [r[0] for r in conn.execute(sql_text + " ORDER BY stream_id", args)]
        events: list[EventRecord] = []
        for stream_id in streams:
            events.extend(self.read_stream(stream_id, from_version=from_version))
        return events

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
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be from 1 to {MAX_PAGE:,} (got {limit})")
        if isinstance(after, str):
            after = Position.parse(after)
        after = after or START
        filters, args = self._filters(event_types, aggregate_types, check_types)
        args.update(tx=str(after.transaction_id), pos=after.global_position, limit=limit)
        sql_text = query("read_all", self.schema, columns=COLUMNS, filters=filters)
        with self.connection() as conn:
            # One REPEATABLE READ snapshot for both statements: the horizon we
            # report is exactly the one the rows were read under.
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                with conn.pipeline():
                    horizon_cur = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())")
                    rows_cur = conn.execute(sql_text, args)
                    horizon = int(horizon_cur.fetchone()[0])
                    rows = rows_cur.fetchall()
            finally:
                conn.execute("COMMIT")
        events = [self.decode_row(r) for r in rows]
        at_end = len(events) < limit
        checkpoint = events[-1].position if events else after
        if at_end:
            # Every transaction below the horizon has finished: nothing can
            # ever appear at or before (horizon - 1, MAX) that we have not read.
            checkpoint = max(checkpoint, Position(horizon - 1, MAX_POSITION))
        return ReadAllPage(events, checkpoint, at_end)

    def iter_all(
        self, after: Position | None = None, batch_size: int | None = None, **filters: Any
    ) -> Any:
        """Every event after a checkpoint, page by page, up to the current head."""
        position = after
        size = batch_size or self.settings.batch_size
        while True:
            page = self.read_all(after=position, limit=size, **filters)
            yield from page.events
            position = page.checkpoint
            if page.at_end:
                return

    def _filters(
        self, event_types: Sequence[str] | None, aggregate_types: Sequence[str] | None,
        check_types: bool = True,
    ) -> tuple[str, dict[str, Any]]:
        parts, args = [], {}
        if event_types is not None:
            types = list(event_types)
            if isinstance(event_types, str) or not types:
                raise ValueError("event_types must be a non-empty list of event type names")
            if check_types:
                self.check_event_types(types)
            parts.append("AND event_type = ANY(%(event_types)s)")
            args["event_types"] = types
        if aggregate_types is not None:
            atypes = list(aggregate_types)
            if isinstance(aggregate_types, str) or not atypes:
                raise ValueError("aggregate_types must be a non-empty list of aggregate type names")
            parts.append("AND aggregate_type = ANY(%(aggregate_types)s)")
            args["aggregate_types"] = atypes
        return " ".join(parts), args

    def known_event_types(self) -> list[str]:
        with self.connection() as conn:
            return [r[0] for r in conn.execute(query("known_event_types", self.schema))]

    def check_event_types(self, types: Sequence[str]) -> None:
        """Raise UnknownEventTypeError when a name was never appended (a typo in a filter)."""
        with self._types_lock:
            unknown = [t for t in types if t not in self._known_types]
            stale = time.monotonic() - self._types_checked_at > self.settings.cache_ttl
            if unknown or stale:
                known = self.known_event_types()
                self._known_types.update(known)
                self._types_checked_at = time.monotonic()
                unknown = [t for t in types if t not in self._known_types]
                if unknown:
                    raise UnknownEventTypeError(unknown, known)

    def decode_row(self, row: tuple[Any, ...], verify: bool | None = None) -> EventRecord:
        """An EventRecord from a row selected with ``COLUMNS``; checks the checksum."""
        (event_id, aggregate_id, aggregate_type, event_type, event_version, aggregate_version,
         stream_id, stream_position, global_position, transaction_id, event_data, payload,
         metadata, created_at, stored_at, status, compression, encryption, digest,
         original_size, stored_size) = row
        if payload is not None:
            try:
                event_data = json.loads(codecs.decompress(compression, bytes(payload)))
            except (CodecError, ValueError) as exc:  # a damaged payload, named like a mismatch
                raise IntegrityError(event_id, global_position, digest, "<unreadable>") from exc
        record = EventRecord(
            aggregate_id=aggregate_id, aggregate_type=aggregate_type, event_type=event_type,
            event_data=event_data, aggregate_version=aggregate_version,
            event_version=event_version, metadata=EventMetadata.from_dict(metadata),
            event_id=event_id, created_at=created_at, stream_id=stream_id,
            stream_position=stream_position, global_position=global_position,
            transaction_id=transaction_id, stored_at=stored_at, status=status,
            checksum=digest, compression=compression, encryption=encryption,
            original_size=original_size, stored_size=stored_size,
        )
        if self.settings.verify_reads if verify is None else verify:
            computed = self._checksum_of(record, metadata)
            if computed != digest:
                raise IntegrityError(event_id, global_position, digest, computed)
        return record

    @staticmethod
    def _checksum_of(record: EventRecord, metadata: dict[str, Any]) -> str:
        assert record.stream_id is not None and record.stream_position is not None
        return checksum_of(record, dumps(record.event_data), dumps(metadata))

    # -- integrity, health, metrics ----------------------------------------

    def verify(
        self,
        from_position: int | None = None,
        to_position: int | None = None,
        progress: Callable[[int], None] | None = None,
        chunk: int = 5000,
    ) -> VerifyReport:
        """Recompute the checksum of every event with a global position in the range."""
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1 (got {chunk})")
        low = from_position or 0
        high = to_position if to_position is not None else MAX_POSITION
        checked = 0
        mismatches: list[ChecksumMismatch] = []
        with self.connection() as conn:
            cursor_from = low - 1
            while True:
                rows = conn.execute(
                    f"SELECT {COLUMNS} FROM {self._q}.events WHERE global_position > %s "
                    "AND global_position <= %s ORDER BY global_position LIMIT %s",
                    [cursor_from, high, chunk],
                ).fetchall()
                if not rows:
                    break
                for row in rows:
                    record = self._decode_lenient(row)
                    computed = self._checksum_of(record, row[12]) if record else "<unreadable>"
                    if computed != row[18]:
                        mismatches.append(ChecksumMismatch(row[0], row[8], row[6], row[18], computed))
                checked += len(rows)
                if progress:
                    progress(len(rows))
                cursor_from = rows[-1][8]
        return VerifyReport(checked, mismatches)

    def _decode_lenient(self, row: tuple[Any, ...]) -> EventRecord | None:
        try:
            return self.decode_row(row, verify=False)
        except Exception:  # a corrupt compressed payload is reported, not raised
            return None

    def health(self) -> HealthReport:
        checks: list[HealthCheck] = []
        try:
            start = time.perf_counter()
            with self.connection() as conn:
                server = conn.execute("SHOW server_version").fetchone()[0]
                latency = (time.perf_counter() - start) * 1000
                checks.append(HealthCheck("database", True, f"PostgreSQL {server}, {latency:.1f} ms"))
                version = current_version(conn, self.schema)
        except StoreUnavailableError as exc:
            return HealthReport([HealthCheck("database", False, str(exc))])
        latest = latest_version()
        checks.append(HealthCheck(
            "schema", version == latest,
            f"schema {self.schema!r} at migration {version} of {latest}"
            + ("" if version == latest else ": run 'evstore init'"),
        ))
        if version:
            now = month_of(datetime.now().astimezone())
            months = {p.month for p in self.list_partitions()}
            wanted = [add_months(now, i) for i in range(2)]
            missing = [f"{m.year:04d}-{m.month:02d}" for m in wanted
                       if f"{m.year:04d}-{m.month:02d}" not in months]
            checks.append(HealthCheck(
                "partitions", not missing,
                "this month and next are in place" if not missing
                else f"missing partitions for {', '.join(missing)}: run 'evstore partitions ensure'",
            ))
        return HealthReport(checks)

    def metrics(self) -> StoreMetrics:
        with self.connection() as conn:
            row = conn.execute(
                f"SELECT count(*), coalesce(sum(original_size), 0), coalesce(sum(stored_size), 0), "
                f"count(*) FILTER (WHERE compression <> 'none') FROM {self._q}.events"
            ).fetchone()
            by_type = dict(conn.execute(
                f"SELECT event_type, count(*) FROM {self._q}.events GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall())
            streams = conn.execute(f"SELECT count(*) FROM {self._q}.streams").fetchone()
        assert row is not None and streams is not None
        parts = self.list_partitions()
        return StoreMetrics(
            events=int(row[0]), streams=int(streams[0]), partitions=len(parts),
            total_bytes=sum(p.total_bytes for p in parts),
            original_payload_bytes=int(row[1]), stored_payload_bytes=int(row[2]),
            compressed_events=int(row[3]), events_by_type={k: int(v) for k, v in by_type.items()},
        )

    # -- plumbing -----------------------------------------------------------


    def connection(self) -> Any:
        """A pooled connection (autocommit) whose driver errors become evstore errors."""
        return self.db.connection()

    def table(self, name: str) -> str:
        """``"schema"."name"`` for SQL text (names are ours, never user input)."""
        return self.db.table(name)
