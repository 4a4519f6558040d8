"""Aggregate snapshots: save an aggregate's state, load it back plus the later events.

A snapshot records the state after the aggregate's events 1..v, and v is the
position of the last event actually applied to build it (read in the same
statement as the events themselves), so a snapshot never claims events it did
not see, even when an append races its build. States are canonical JSON,
compressed (zstd by default) and checksummed; a snapshot of another state
schema, or whose checksum fails, is ignored and the aggregate is loaded from
its events instead. See ``docs/snapshots.md``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from .. import codecs
from ..db import Database
from ..errors import AggregateNotFoundError, EventStoreError
from ..serialization import dumps
from ..store import hooks
from ..store.persistence import EventRecord, EventStore
from ..store.reads import COLUMNS
from .aggregate import A, state_schema_of, type_of
from .stats import LoadTimings

log = logging.getLogger(__name__)
DEFAULT_CODEC = "zstd"


@dataclass(frozen=True)
class EventSnapshot:
    snapshot_id: uuid.UUID
    aggregate_id: str
    aggregate_type: str
    aggregate_version: int
    state_schema: int
    state: dict[str, Any]
    compression: str
    checksum: str
    original_size: int
    stored_size: int
    created_at: datetime

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # The spec's service form, EventSnapshot(store, SnapshotConfig(...)): a SnapshotStore.
        if args and isinstance(args[0], EventStore):
            return SnapshotStore(*args, **kwargs)
        return super().__new__(cls)


def encode_state(state: dict[str, Any], codec: str) -> tuple[bytes, str, int]:
    """(stored bytes, SHA-256 of the canonical JSON, its size)."""
    raw = dumps(state).encode()
    return codecs.compress(codec, raw), hashlib.sha256(raw).hexdigest(), len(raw)


def decode_state(data: bytes, codec: str, checksum: str) -> dict[str, Any] | None:
    """The state, or None when the bytes do not match their checksum."""
    raw = codecs.decompress(codec, data)
    if hashlib.sha256(raw).hexdigest() != checksum:
        return None
    state = json.loads(raw)
    return state if isinstance(state, dict) else None


class SnapshotStore:
    """Snapshots of one event store. Thread-safe; cheap to create."""

    def __init__(self, store: EventStore, codec: str | Any = DEFAULT_CODEC) -> None:
        # The spec's EventSnapshot(store, SnapshotConfig(...)): the config and its codec.
        self.config = codec if hasattr(codec, "compression") else None
        codec = self.config.compression if self.config is not None else codec
        codecs.get_codec(codec)  # an unknown codec fails here, not at the first save
        self.store = store
        self.db: Database = store.db
        self.codec = codec
        self.timings = LoadTimings()

    def _sql(self, name: str, **fragments: str) -> str:
        return self.db.sql("snapshots", name, **fragments)

    # -- reading ----------------------------------------------------------------

    def latest(
        self, cls: type[Any], aggregate_id: str, aggregate_type: str | None = None,
        conn: psycopg.Connection[Any] | None = None,
    ) -> EventSnapshot | None:
        """The newest snapshot of the class's state schema whose checksum holds."""
        aggregate_id = str(aggregate_id)  # a uuid.UUID (the spec's ids) as its text
        atype = type_of(cls, aggregate_type)
        args = {"aggregate_type": atype, "aggregate_id": aggregate_id,
                "state_schema": state_schema_of(cls)}
        with using(self.db, conn) as c:
            row = c.execute(self._sql("latest_snapshot"), args).fetchone()
        if row is None:
            return None
        sid, version, schema, data, codec, digest, original, stored, created = row
        state = decode_state(bytes(data), codec, digest)
        if state is None:
            log.warning("snapshot %s of %s/%s fails its checksum: ignored", sid, atype, aggregate_id)
            return None
        return EventSnapshot(sid, aggregate_id, atype, int(version), int(schema), state, codec,
                             digest, int(original), int(stored), created)

    def load_aggregate_with_events(
        self, cls: type[A], aggregate_id: str, aggregate_type: str | None = None,
        *, use_snapshot: bool = True, conn: psycopg.Connection[Any] | None = None,
    ) -> tuple[A, int]:
        """The aggregate and its version: latest usable snapshot plus the events after it.

        Equal to a load from every event (``use_snapshot=False``). Raises
        AggregateNotFoundError when the aggregate has no events.
        """
        started = time.perf_counter()
        aggregate_id = str(aggregate_id)  # a uuid.UUID (the spec's ids) as its text
        atype = type_of(cls, aggregate_type)
        with using(self.db, conn) as c, hooks.access_scope(  # one access-log entry (issue 11)
                self.store, "aggregate_load", aggregate_type=atype, aggregate_id=aggregate_id):
            stream_id = self._stream_of(c, atype, aggregate_id)
            snapshot = self.latest(cls, aggregate_id, atype, conn=c) if use_snapshot else None
            aggregate = cls(aggregate_id)
            after = 0
            if snapshot is not None:
                aggregate.restore(snapshot.state)
                after = snapshot.aggregate_version
                hooks.note(snapshot_version=after)
            applied = self._apply_events(c, aggregate, stream_id, after)
        aggregate.version = after + applied
        if aggregate.version == 0:
            raise AggregateNotFoundError(atype, aggregate_id)
        self.timings.add(atype, applied, (time.perf_counter() - started) * 1000)
        return aggregate, aggregate.version

    def _stream_of(self, conn: psycopg.Connection[Any], atype: str, aggregate_id: str) -> str:
        rows = conn.execute(self._sql("aggregate_streams"),
                            {"aggregate_type": atype, "aggregate_id": aggregate_id}).fetchall()
        streams = [stream_id for stream_id, _version in rows]
        if not streams:
            raise AggregateNotFoundError(atype, aggregate_id)
        if len(streams) > 1:
            raise EventStoreError(
                f"aggregate {atype}/{aggregate_id} has {len(streams)} streams "
                f"({', '.join(streams)}): snapshots need one stream per aggregate"
            )
        return str(streams[0])

    def _apply_events(
        self, conn: psycopg.Connection[Any], aggregate: Any, stream_id: str, after: int
    ) -> int:
        """Apply the stream's events after position ``after``, read in one statement."""
        sql_text = self._sql("stream_events_after", columns=COLUMNS)
        expected = after + 1
        for row in conn.execute(sql_text, {"stream_id": stream_id, "after": after}):
            event: EventRecord = hooks.observe(self.store, "aggregate_load", [self.store.decode_row(row)])[0]
            assert event.stream_position is not None  # a stored row's position (NOT NULL column)
            if event.stream_position > expected:  # archived (issue 13): read through the store
                for old in self.store.read_stream(stream_id, expected,
                                                  event.stream_position - expected):
                    if old.stream_position == expected:
                        aggregate.apply(old)
                        expected += 1
            if event.stream_position != expected:  # positions have no gaps: never happens
                raise EventStoreError(
                    f"stream {stream_id!r}: expected position {expected}, "
                    f"found {event.stream_position}")
            aggregate.apply(event)
            expected += 1
        if expected == 1:  # no live event at all: every one may be archived (issue 13)
            for old in self.store.read_stream(stream_id, 1):
                if old.stream_position == expected:
                    aggregate.apply(old)
                    expected += 1
        return expected - 1 - after

    # -- writing ----------------------------------------------------------------

    def create_snapshot(
        self, cls: type[A] | A, aggregate_id: str, aggregate_type: str | None = None,
        version: int | None = None, *, codec: str | None = None, keep: int = 2,
        conn: psycopg.Connection[Any] | None = None,
    ) -> EventSnapshot | None:
        """Snapshot the aggregate at its current version; None if nothing changed since the last.

        With ``conn`` the snapshot is written in that connection's transaction
        (a job batch commits it with its outcome); otherwise in a REPEATABLE
        READ transaction of its own. The spec's form, an aggregate and its
        ``version`` (``create_snapshot(user, user_id, "User", version)``), snapshots
        its class's state rebuilt from the stored events, never the object as
        given (a snapshot always matches its events; its version may be later
        than ``version`` when events were appended since).
        """
        cls = cls if isinstance(cls, type) else type(cls)
        aggregate_id = str(aggregate_id)
        atype = type_of(cls, aggregate_type)
        codec = codec or self.codec
        with using(self.db, conn) as c, _transaction(c, own=conn is None):
            previous = self.latest(cls, aggregate_id, atype, conn=c)
            aggregate, version = self.load_aggregate_with_events(cls, aggregate_id, atype, conn=c)
            if previous is not None and previous.aggregate_version >= version:
                return None
            state = aggregate.save()
            data, digest, original = encode_state(state, codec)
            schema = state_schema_of(cls)
            row = c.execute(self._sql("insert_snapshot"), {
                "aggregate_id": aggregate_id, "aggregate_type": atype,
                "aggregate_version": version, "state_schema": schema, "state": data,
                "compression": codec, "checksum": digest, "original_size": original,
                "stored_size": len(data),
            }).fetchone()
            if keep > 0:
                c.execute(self._sql("prune_snapshots"), {
                    "aggregate_type": atype, "aggregate_id": aggregate_id,
                    "state_schema": schema, "keep": keep})
        if row is None:  # the same version was written meanwhile (a concurrent build)
            return None
        snapshot_id, created_at = row
        return EventSnapshot(snapshot_id, aggregate_id, atype, version, schema, state, codec,
                             digest, original, len(data), created_at)

    def flush_load_stats(self) -> int:
        """Store the measured load times (for the ADAPTIVE strategy); the types written."""
        fitted = self.timings.take()
        if not fitted:
            return 0
        with self.db.connection() as conn:
            for atype, (loads, events, per_event, base) in fitted.items():
                conn.execute(self._sql("record_load_stats"), {
                    "aggregate_type": atype, "loads": loads, "events": events,
                    "ms_per_event": per_event, "base_ms": base})
        return len(fitted)


def using(
    db: Database, conn: psycopg.Connection[Any] | None
) -> AbstractContextManager[psycopg.Connection[Any]]:
    """The given connection (left open), or a pooled one for the duration."""
    return nullcontext(conn) if conn is not None else db.connection()


class _transaction:
    """REPEATABLE READ on our own connection; the caller's transaction otherwise."""

    def __init__(self, conn: psycopg.Connection[Any], own: bool) -> None:
        self._conn = conn
        self._own = own
        self._tx: Any = None

    def __enter__(self) -> None:
        if self._own:
            self._conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self._tx = self._conn.transaction()
            self._tx.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self._tx is not None:
            try:
                self._tx.__exit__(*exc)
            finally:
                self._conn.isolation_level = None
