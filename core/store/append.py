"""Append with optimistic concurrency: Message DB's ``write_message``, in three shapes.

Whatever its shape, an append is the same three steps, in this order, in one
transaction (read them in :meth:`Appender._write`):

1. **The lock.** ``pg_advisory_xact_lock`` on ``schema:stream`` serialises the
   writers of one stream *before* any of them takes a transaction id, so the
   transaction ids of one stream's appends follow its positions (the global
   order relies on it: ``docs/global-order.md``). Writers of different
   streams run in parallel.
2. **The version check.** The stream's row is created (expected version 0) or
   advanced only where it is at the expected version and of the same
   aggregate. No row back: another writer won.
3. **The insert** of the events at positions ``expected+1 .. expected+n``.

The shapes differ only in round trips, never in these steps:

- an exact expected version and at most ``COPY_THRESHOLD`` events: the three
  steps are one statement (``append_exact``: the lock inside the stream's
  write, the insert only if the row moved), one round trip, autocommit;
- an exact expected version and more events: lock; check; COPY;
- ``ANY``: lock; read the stream's head (the version to expect) and accept a
  retry of events stored already; check; insert (VALUES or COPY).

With EVENT_STORE_ENCRYPTION, the blind-index entries of the sealed events
(core/store/fieldcipher.py) are written by the insert's own statement (a CTE;
a statement of their own before a COPY): in the append's transaction and, but
for COPY, in no extra round trip; an append that loses writes none.

A lost check (or a duplicate event id) is resolved after the transaction by
:meth:`Appender._resolve_conflict`: the same events stored before are a retry
and accepted (``deduplicated``), an event id used elsewhere is
DuplicateEventError, anything else is ConcurrencyError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg.rows import class_row

from .. import checksums
from ..errors import ConcurrencyError, DuplicateEventError, StoreUnavailableError
from ..keys import keyring
from . import fieldcipher
from .partitions import MonthPartitions, month_of
from .persistence import ANY, NO_STREAM, AppendResult, EventRecord, EventStore, ExpectedVersion, StreamState
from .prepare import INSERT_COLUMNS, ROW_TYPES, Prepared, insert_row, prepare
from .validation import validate_batch
from .versions import (
    Conflict,
    MissingMonthPartition,
    StoredEvent,
    StreamHead,
    deduplicated,
    expected_version,
    foreign_aggregate,
)

# The placeholders of one row of INSERT_COLUMNS in a multi-row VALUES.
_VALUES_ROW = "(%s,%s,%s,%s,%s,%s,%s,%s,%s::jsonb,%s,%s::jsonb,%s,%s,%s,%s,%s)"
# Appends up to this many events use one multi-row INSERT; larger ones use COPY.
COPY_THRESHOLD = 64

# -- the append ---------------------------------------------------------------


class PreparedBatch(list[Prepared]):
    """The prepared events of one append, and the blind-index rows to write with them."""

    blind_rows: fieldcipher.BlindRows | None = None


def _blind_args(index: fieldcipher.BlindRows) -> list[Any]:
    return [index["fields"], index["digests"], index["subject_refs"], index["event_ids"]]



class Appender:
    """The append of one store: validation, month partitions, then lock, check, insert."""

    def __init__(self, store: EventStore, month_partitions: MonthPartitions, known_types: set[str]) -> None:
        self.store = store  # its settings are read on every append (they may be replaced)
        self.month_partitions = month_partitions
        self.known_types = known_types  # shared with the reads: types stored already
        db = store.db
        self.db = db
        self._lock_stream = db.sql("store", "lock_stream")
        self._stream_head = db.sql("store", "stream_head")
        self._stream_event_ids = db.sql("store", "stream_event_ids")
        # The version check: create the stream (expected 0) or advance it.
        self._check = {True: db.sql("store", "create_stream"), False: db.sql("store", "advance_stream")}
        # The same, with the lock inside, for the one-statement append.
        self._locked_check = {True: db.sql("store", "append_stream_create"),
                              False: db.sql("store", "append_stream_advance")}
        self._types_cte = db.sql("store", "append_types_cte")
        self._blind_cte = db.sql("store", "append_blind_cte")
        self._insert_blind_cte = db.sql("store", "insert_blind_cte")
        self._insert_blind = db.sql("store", "insert_blind_index")
        self._remember_type = db.sql("store", "remember_event_type")
        self._allocate_positions = db.sql("store", "allocate_positions")
        self._copy_events = db.sql("store", "copy_events", columns=INSERT_COLUMNS)
        self._current_tx = db.sql("store", "current_transaction_id")
        self._any_stored_id = db.sql("store", "any_stored_event_id")

    def append_events(
        self, stream_id: str, events: Sequence[EventRecord], wanted: ExpectedVersion | None
    ) -> AppendResult:
        """Validate and prepare the batch, make sure its month partitions exist, append."""
        batch = list(events)
        prepared = self.prepare(stream_id, batch)
        expected = expected_version(batch, wanted)
        months = {month_of(e.created_at) for e in batch}
        for _attempt in range(3):
            self.month_partitions.ensure(months)
            try:
                with self.db.connection() as conn:
                    return self.append(conn, stream_id, prepared, expected)
            except MissingMonthPartition:
                # Dropped since we cached it (archival): create it again.
                self.month_partitions.forget(months)
        raise StoreUnavailableError(f"could not create partitions for {sorted(months)}")

    def prepare(self, stream_id: str, events: Sequence[EventRecord]) -> PreparedBatch:
        """Validate the batch and encode each event: everything before the database."""
        batch = list(events)
        validate_batch(stream_id, batch)
        # Declared personal fields sealed per subject (EVENT_STORE_ENCRYPTION), before the checksum.
        sealed, index = fieldcipher.seal(self.store, batch)
        settings = self.store.settings
        signing = checksums.signer(keyring(settings))
        out = PreparedBatch(prepare(i, e, settings, signing) for i, e in enumerate(sealed))
        out.blind_rows = index
        return out

    def append(
        self, conn: psycopg.Connection, stream_id: str, batch: list[Prepared], expected: int | StreamState
    ) -> AppendResult:
        """Lock, check, insert; a lost check or a duplicate id resolved after."""
        first = batch[0].event
        new_types = {p.event.event_type for p in batch} - self.known_types
        times = [p.event.created_at for p in batch]
        params = {
            "lock_key": f"{self.store.db.schema}:{stream_id}",
            "stream_id": stream_id,
            "aggregate_id": first.aggregate_id,
            "aggregate_type": first.aggregate_type,
            # The stream row keeps the times of its first and last events (month pruning).
            "first_at": min(times),
            "last_at": max(times),
        }
        try:
            if expected is ANY:
                try:
                    result = self._write(conn, stream_id, batch, None, params, new_types)
                except pgerrors.UniqueViolation:
                    # Not a retry (that is seen under the lock): an id used in another stream.
                    raise self._reused_id(conn, stream_id, batch) from None
            else:
                assert isinstance(expected, int)
                try:
                    if len(batch) <= COPY_THRESHOLD:
                        result = self._write_one_statement(conn, stream_id, batch, expected, params,
                                                           new_types)
                    else:
                        result = self._write(conn, stream_id, batch, expected, params, new_types)
                except (Conflict, pgerrors.UniqueViolation):
                    # A lost race on the stream's version, or (primary key) the
                    # same event stored before: a retry, or a reused event id.
                    return self._resolve_conflict(conn, stream_id, batch, expected)
        except pgerrors.CheckViolation as exc:
            if exc.diag.constraint_name is None:  # "no partition of relation … found for row"
                raise MissingMonthPartition() from exc
            raise
        self.known_types.update(new_types)
        return result

    def _write(
        self, conn: psycopg.Connection, stream_id: str, batch: list[Prepared], expected: int | None,
        params: dict[str, Any], new_types: set[str],
    ) -> AppendResult:
        """The lock, the version check and the insert in one transaction (``expected`` None: ANY)."""
        n = len(batch)
        with conn.transaction():
            # 1. The lock.
            conn.execute(self._lock_stream, params)
            if expected is None:
                # ANY: expect the stream's version, unless these events are stored already.
                head = self._head(conn, stream_id)
                version = 0 if head is None else head.version
                if head is not None:
                    if (head.aggregate_id, head.aggregate_type) != (params["aggregate_id"],
                                                                    params["aggregate_type"]):
                        raise foreign_aggregate(stream_id, head, batch)
                    stored = self._stored(conn, stream_id, batch)
                    if stored:
                        return deduplicated(keyring(self.store.settings), stream_id, batch, stored)
            else:
                version = expected
            # 2. The version check.
            params = {**params, "expected": version, "new_version": version + n}
            if conn.execute(self._check[version == 0], params).fetchone() is None:
                if expected is None:  # impossible under the lock
                    raise StoreUnavailableError(f"stream {stream_id!r} changed under its lock")
                raise Conflict()
            # 3. The insert.
            if n > COPY_THRESHOLD:
                positions, tx = self._insert_copy(conn, stream_id, batch, version, new_types)
            else:
                positions, tx = self._insert_values(conn, stream_id, batch, version, new_types)
        return AppendResult(stream_id, version + n, positions, tx)

    def _write_one_statement(
        self, conn: psycopg.Connection, stream_id: str, batch: list[Prepared], expected: int,
        params: dict[str, Any], new_types: set[str],
    ) -> AppendResult:
        """The lock, the version check and the insert as one statement: one round trip."""
        args = {**params, "expected": expected, "new_version": expected + len(batch)}
        placeholders = []
        for i, p in enumerate(batch):
            values = insert_row(stream_id, expected + i + 1, p)
            names = []
            for j, (value, cast) in enumerate(zip(values, ROW_TYPES, strict=True)):
                key = f"r{i}_{j}"
                args[key] = value
                names.append(f"%({key})s::{cast}")
            placeholders.append("(" + ",".join(names) + ")")
        types_cte = ""
        if new_types:
            types_cte = self._types_cte
            args["new_types"] = sorted(new_types)
        index = getattr(batch, "blind_rows", None)
        if index:
            types_cte += self._blind_cte
            args.update({f"b_{k}": v for k, v in index.items()})
        statement = self.db.sql("store", "append_exact", stream_write=self._locked_check[expected == 0],
                                types_cte=types_cte, columns=INSERT_COLUMNS,
                                rows=",".join(placeholders))
        rows = sorted(conn.execute(statement, args).fetchall())
        if not rows:
            raise Conflict()
        (_, _, tx) = rows[0]
        return AppendResult(stream_id, expected + len(batch), [g for _, g, _ in rows], tx)

    def _insert_values(
        self, conn: psycopg.Connection, stream_id: str, batch: list[Prepared], base: int,
        new_types: set[str],
    ) -> tuple[list[int], int]:
        self._remember_types(conn, new_types)
        index = getattr(batch, "blind_rows", None)
        args: list[Any] = _blind_args(index) if index else []
        for i, p in enumerate(batch):
            args.extend(insert_row(stream_id, base + i + 1, p))
        statement = self.db.sql("store", "insert_events_values", columns=INSERT_COLUMNS,
                                rows=",".join([_VALUES_ROW] * len(batch)),
                                blind_cte=self._insert_blind_cte if index else "")
        rows = conn.execute(statement, args).fetchall()
        (_, tx) = rows[0]
        return [g for g, _ in rows], tx

    def _insert_copy(
        self, conn: psycopg.Connection, stream_id: str, batch: list[Prepared], base: int,
        new_types: set[str],
    ) -> tuple[list[int], int]:
        self._remember_types(conn, new_types)
        index = getattr(batch, "blind_rows", None)
        if index:
            conn.execute(self._insert_blind, _blind_args(index))
        positions = sorted(g for (g,) in conn.execute(self._allocate_positions, [len(batch)]))
        with conn.cursor().copy(self._copy_events) as copy:
            for i, p in enumerate(batch):
                copy.write_row((*insert_row(stream_id, base + i + 1, p), positions[i]))
        row = conn.execute(self._current_tx).fetchone()
        assert row is not None
        (tx,) = row
        return positions, int(tx)

    def _remember_types(self, conn: psycopg.Connection, new_types: set[str]) -> None:
        for event_type in new_types:
            conn.execute(self._remember_type, [event_type])

    def _head(self, conn: psycopg.Connection, stream_id: str) -> StreamHead | None:
        return conn.cursor(row_factory=class_row(StreamHead)).execute(
            self._stream_head, [stream_id]).fetchone()

    def _stored(self, conn: psycopg.Connection, stream_id: str, batch: list[Prepared]) -> list[StoredEvent]:
        ids = [p.event.event_id for p in batch]
        return conn.cursor(row_factory=class_row(StoredEvent)).execute(
            self._stream_event_ids, [stream_id, ids]).fetchall()

    def _resolve_conflict(
        self, conn: psycopg.Connection, stream_id: str, batch: list[Prepared], expected: int
    ) -> AppendResult:
        """After a lost check or a duplicate key: a retry, a reused id, or another writer won."""
        head = self._head(conn, stream_id)
        actual = 0 if head is None else head.version
        first = batch[0].event
        if head is not None and (head.aggregate_id, head.aggregate_type) != (first.aggregate_id,
                                                                             first.aggregate_type):
            raise foreign_aggregate(stream_id, head, batch)
        stored = self._stored(conn, stream_id, batch)
        if stored:
            return deduplicated(keyring(self.store.settings), stream_id, batch, stored, expected)
        if actual == expected:
            raise self._reused_id(conn, stream_id, batch)
        raise ConcurrencyError(stream_id, NO_STREAM if expected == 0 else expected, actual)

    def _reused_id(
        self, conn: psycopg.Connection, stream_id: str, batch: list[Prepared]
    ) -> DuplicateEventError:
        ids = [p.event.event_id for p in batch]
        row = conn.execute(self._any_stored_id, [ids]).fetchone()
        if row is None:
            return DuplicateEventError(stream_id, ids[0], None)
        (event_id, stored_stream, stored_position) = row
        if stored_stream == stream_id:
            return DuplicateEventError(stream_id, event_id, int(stored_position))
        return DuplicateEventError(stream_id, event_id, None)

