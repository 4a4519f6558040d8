"""Reads of the store: one stream, one aggregate, the global order, and row decoding.

The global order is ``(transaction_id, global_position)``. ``read_all`` reads
only rows of transactions older than every transaction still running (the
snapshot's xmin, the *horizon*), so a checkpointed reader never skips an event
that commits late (see ``docs/global-order.md``). The horizon and the rows
are read in one REPEATABLE READ snapshot, so the horizon reported is exactly
the one the rows were read under.

``decode_row`` is the hot path of every read: it unpacks a row selected with
``COLUMNS``, decompresses a payload and checks the checksum.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .. import checksums, codecs
from ..errors import CodecError, IntegrityError, ReadLimitError, UnknownEventTypeError
from ..keys import CHECKSUM, KeyRing, keyring
from ..serialization import checksum_of, dumps
from . import fieldcipher
from .persistence import START, EventMetadata, EventRecord, EventStore, Position, ReadAllPage

# The JSON columns come as the text jsonb prints: the bytes a version-2 checksum covers.
COLUMNS = (
    "event_id, aggregate_id, aggregate_type, event_type, event_version, aggregate_version, "
    "stream_id, stream_position, global_position, transaction_id, event_data::text AS event_data, "
    "payload, metadata::text AS metadata, created_at, stored_at, status, compression, encryption, "
    "checksum, original_size, stored_size"
)
MAX_POSITION = 2**63 - 1
# The most events read_all returns at once (pages are also capped in bytes:
# Settings.max_page_bytes).
MAX_PAGE = 1_000_000
# Called with (reads, stream_id, from_version, max_count, backwards, events) after
# every read_stream; returns the events completed with archived ones or raises
# ArchivedHistoryError (core/archive/readthrough.py registers itself here).
ARCHIVE_READ_HOOKS: list[Callable[..., list[EventRecord]]] = []


def record_checksum(record: EventRecord, metadata: dict[str, Any]) -> str:
    """The version-1 checksum recomputed from a decoded record and its stored metadata."""
    assert record.stream_id is not None and record.stream_position is not None
    return checksum_of(record, dumps(record.event_data), dumps(metadata))


def record_message(record: EventRecord, data: bytes, metadata: bytes) -> bytes:
    """What a version-2 checksum of this stored event authenticates."""
    assert record.stream_id is not None and record.stream_position is not None
    return checksums.message(
        record.event_id, record.stream_id, record.stream_position, record.aggregate_id,
        record.aggregate_type, record.event_type, record.event_version, record.aggregate_version,
        record.created_at, data, metadata)


# What a read says of a version-1 checksum the settings do not accept.
LEGACY = ("<an unkeyed version-1 checksum, which anyone who can write the row could forge: "
          "run 'evstore verify --upgrade' (or set EVENT_STORE_ACCEPT_LEGACY_CHECKSUMS=true until then)>")


def _after(page: list[EventRecord], backwards: bool) -> int | None:
    """The stream position a full page's next page starts at (None: there is none)."""
    last = page[-1].stream_position
    assert last is not None
    after = last - 1 if backwards else last + 1
    return after if after >= 0 else None


def byte_capped(total: int, settings: Any) -> bool:
    """Whether a page of ``total`` bytes may have been cut by the page byte cap."""
    return bool(total + settings.max_event_bytes > settings.max_page_bytes)


class StoreReads:
    """The reads of one store, and the cache of the event types it has stored."""

    def __init__(self, store: EventStore) -> None:
        self.store = store  # its settings are read on every call (they may be replaced)
        db = store.db
        self.db = db
        # Event types known to be stored: filled by appends and by check_event_types.
        self.known_types: set[str] = set()
        self._types_checked_at = 0.0
        self._types_lock = threading.Lock()
        self._read_stream = db.sql("store", "read_stream", columns=COLUMNS)
        self._ring_for: tuple[Any, KeyRing] | None = None
        self._aggregate_streams = db.sql("store", "aggregate_streams")
        self._aggregate_streams_of_type = db.sql("store", "aggregate_streams_of_type")
        self._filter_event_types = db.sql("store", "filter_event_types")
        self._filter_aggregate_types = db.sql("store", "filter_aggregate_types")
        self._stream_head = db.sql("store", "stream_head")
        self._known_event_types = db.sql("store", "known_event_types")

    # -- one stream, one aggregate --------------------------------------------

    def get_stream_version(self, stream_id: str) -> int:
        with self.db.connection() as conn:
            row = conn.execute(self._stream_head, [stream_id]).fetchone()
        if row is None:
            return 0
        (version, _aggregate_id, _aggregate_type) = row
        return int(version)

    def read_stream(
        self, stream_id: str, from_version: int | None, max_count: int | None, backwards: bool
    ) -> list[EventRecord]:
        if max_count is not None and not 0 <= max_count < 2**62:
            raise ValueError(f"max_count must be from 0 to 2**62-1 (got {max_count})")
        if from_version is None:
            from_version = MAX_POSITION if backwards else 1
        if not 0 <= from_version <= MAX_POSITION:
            raise ValueError(f"from_version must be from 0 to 2**63-1 (got {from_version})")
        settings = self.store.settings
        events: list[EventRecord] = []
        total = 0
        start = from_version
        with self.db.connection() as conn:
            while True:
                # Pages of batch_size, so a long stream is never one huge result.
                want = settings.batch_size if max_count is None else min(
                    settings.batch_size, max_count - len(events))
                if want <= 0:
                    break
                rows = conn.execute(self._read_stream,
                                    [stream_id, from_version, want, backwards]).fetchall()
                for r in rows:
                    events.append(self.decode_row(r))
                    total += r[19]  # original_size
                if total > settings.max_page_bytes:
                    raise ReadLimitError(
                        f"stream {stream_id!r}: more than {settings.max_page_bytes:,} bytes of "
                        "events in one read (EVENT_STORE_MAX_PAGE_BYTES); read it in pages with "
                        "max_count or iter_stream()")
                after = None if len(rows) < want else _after(events, backwards)
                if after is None:
                    break
                from_version = after
        for hook in ARCHIVE_READ_HOOKS:  # archived history (issue 13)
            events = hook(self, stream_id, start, max_count, backwards, events)
        return events

    def iter_stream(
        self, stream_id: str, from_version: int | None, page_size: int | None, backwards: bool
    ) -> Iterator[EventRecord]:
        """One stream's events, a page at a time (any length, bounded memory)."""
        size = page_size or self.store.settings.batch_size
        if not 1 <= size <= MAX_PAGE:
            raise ValueError(f"page_size must be from 1 to {MAX_PAGE:,} (got {size})")
        position = from_version
        while True:
            page = self.read_stream(stream_id, position, size, backwards)
            yield from page
            position = None if len(page) < size else _after(page, backwards)
            if position is None:
                return

    def get_events_for_aggregate(
        self, aggregate_id: str, aggregate_type: str | None, from_version: int
    ) -> list[EventRecord]:
        if aggregate_type is None:
            statement, args = self._aggregate_streams, [aggregate_id]
        else:
            statement, args = self._aggregate_streams_of_type, [aggregate_id, aggregate_type]
        with self.db.connection() as conn:
            streams = [stream_id for (stream_id,) in conn.execute(statement, args)]
        events: list[EventRecord] = []
        for stream_id in streams:
            events.extend(self.read_stream(stream_id, from_version, None, False))
        return events

    # -- the global order -------------------------------------------------------

    def read_all(
        self,
        after: Position | str | None = None,
        limit: int = 1000,
        event_types: Sequence[str] | None = None,
        aggregate_types: Sequence[str] | None = None,
        check_types: bool = True,
    ) -> ReadAllPage:
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be from 1 to {MAX_PAGE:,} (got {limit})")
        if isinstance(after, str):
            after = Position.parse(after)
        after = after or START
        filters, args = self._filters(event_types, aggregate_types, check_types)
        settings = self.store.settings
        args.update(tx=str(after.transaction_id), pos=after.global_position, limit=limit,
                    max_bytes=settings.max_page_bytes)
        statement = self.db.sql("store", "read_all", columns=COLUMNS, filters=filters)
        with self.db.connection() as conn:
            # The horizon first, then the rows in a snapshot taken after it:
            # every transaction below the horizon that can write events has
            # finished by then (write_horizon in migration 0006).
            horizon = self.db.horizon(conn)
            args["horizon"] = str(horizon)
            with self.db.read_only_snapshot(conn):
                rows = conn.execute(statement, args).fetchall()
        events = [self.decode_row(r) for r in rows]
        at_end = len(events) < limit and not byte_capped(sum(r[19] for r in rows), settings)
        checkpoint = events[-1].position if events else after
        if at_end:
            # Every transaction below the horizon has finished: nothing can
            # ever appear at or before (horizon - 1, MAX) that we have not read.
            checkpoint = max(checkpoint, Position(int(horizon) - 1, MAX_POSITION))
        return ReadAllPage(events, checkpoint, at_end)

    def iter_all(
        self, after: Position | None, batch_size: int | None, **filters: Any
    ) -> Iterator[EventRecord]:
        position = after
        size = batch_size or self.store.settings.batch_size
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
            parts.append(self._filter_event_types)
            args["event_types"] = types
        if aggregate_types is not None:
            atypes = list(aggregate_types)
            if isinstance(aggregate_types, str) or not atypes:
                raise ValueError("aggregate_types must be a non-empty list of aggregate type names")
            parts.append(self._filter_aggregate_types)
            args["aggregate_types"] = atypes
        return " ".join(parts), args

    # -- event types --------------------------------------------------------------

    def known_event_types(self) -> list[str]:
        with self.db.connection() as conn:
            return [event_type for (event_type,) in conn.execute(self._known_event_types)]

    def check_event_types(self, types: Sequence[str]) -> None:
        """Raise UnknownEventTypeError when a name was never appended (a typo in a filter)."""
        with self._types_lock:
            unknown = [t for t in types if t not in self.known_types]
            stale = time.monotonic() - self._types_checked_at > self.store.settings.cache_ttl
            if unknown or stale:
                known = self.known_event_types()
                self.known_types.update(known)
                self._types_checked_at = time.monotonic()
                unknown = [t for t in types if t not in self.known_types]
                if unknown:
                    raise UnknownEventTypeError(unknown, known)

    # -- rows -------------------------------------------------------------------------

    def ring(self) -> KeyRing:
        """The key ring of the store's settings (looked up again when they are replaced)."""
        settings = self.store.settings
        cached = self._ring_for
        if cached is None or cached[0] is not settings:
            cached = self._ring_for = (settings, keyring(settings))
        return cached[1]

    def decode_row(self, row: tuple[Any, ...], verify: bool | None = None) -> EventRecord:
        """An EventRecord from a row selected with ``COLUMNS``; checks the checksum.

        A version-2 checksum is checked over the bytes received (the JSON text
        and the decompressed payload), which are decoded once.
        """
        (event_id, aggregate_id, aggregate_type, event_type, event_version, aggregate_version,
         stream_id, stream_position, global_position, transaction_id, data_text, payload,
         metadata_text, created_at, stored_at, status, compression, encryption, digest,
         original_size, stored_size) = row
        if payload is not None:
            try:
                # (no further than its recorded size: a crafted payload cannot balloon)
                data = codecs.decompress(compression, bytes(payload), limit=original_size)
                event_data = json.loads(data)
            except (CodecError, ValueError) as exc:  # a damaged payload, named like a mismatch
                raise IntegrityError(event_id, global_position, digest, "<unreadable>") from exc
        else:
            data = None
            event_data = json.loads(data_text)
        metadata = json.loads(metadata_text)
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
        if self.store.settings.verify_reads if verify is None else verify:
            if digest.startswith("2:"):
                # The hot path, inline: the HMAC of the bytes received, with the key named.
                kid, _, mac = digest[2:].partition(":")
                msg = checksums.message(
                    event_id, stream_id, stream_position, aggregate_id, aggregate_type, event_type,
                    event_version, aggregate_version, created_at,
                    data if data is not None else data_text.encode(), metadata_text.encode())
                if not hmac.compare_digest(self.ring().hmac(CHECKSUM, kid).hexdigest(msg), mac):
                    raise IntegrityError(event_id, global_position, digest, "<does not match>")
            elif not hmac.compare_digest(record_checksum(record, metadata), digest):
                raise IntegrityError(event_id, global_position, digest, "<does not match>")
            elif not self.store.settings.accept_legacy_checksums:
                raise IntegrityError(event_id, global_position, digest, LEGACY)
        # Sealed personal fields (core/store/fieldcipher.py) opened once the checksum is checked.
        opened: EventRecord = fieldcipher.open_record(
            self.store, record, data if data is not None else data_text, metadata_text)
        return opened
