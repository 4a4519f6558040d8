"""Append workloads: our store against raw COPY, raw INSERT, and eventsourcing.

Every workload writes the same identity-service payloads (see workload.py)
and json-serialises them inside the timed region, as a real producer would.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from evstore.core import NO_STREAM, EventRecord, PostgreSQLEventStore

from benchmarks.scratch import RAW_COLUMNS, connect, conninfo
from benchmarks.timing import Clock, Clocked, Writer
from benchmarks.workload import AGGREGATE_TYPE, Spec, metadata, payload, raw_row, record

compact = partial(json.dumps, separators=(",", ":"))
STREAMS_PER_WRITER = 50
RING = 500  # distinct payloads a writer cycles through


# -- batch appends (1,000 events per call) ----------------------------------

def batch_ours(store: PostgreSQLEventStore, batches: list[list[Spec]], tag: str) -> Clocked:
    """One append_events call per batch, each into a new stream (expected: no stream)."""
    work = []
    for b, batch in enumerate(batches):
        stream = f"{tag}-{b}"
        work.append((stream, [record(s, stream, i + 1) for i, s in enumerate(batch)]))
    clock = Clock()
    for stream, events in work:
        store.append_events(stream, events, expected_version=NO_STREAM)
    return clock.stop(sum(len(e) for _, e in work))


def batch_raw_copy(url: str, table: str, batches: list[list[Spec]], tag: str) -> Clocked:
    """COPY of the same rows, one transaction per batch, JSON serialised in the loop."""
    with connect(url) as conn:
        clock = Clock()
        for b, batch in enumerate(batches):
            stream = f"{tag}-{b}"
            with conn.transaction(), conn.cursor().copy(
                f"COPY {table} ({RAW_COLUMNS}) FROM STDIN"
            ) as copy:
                for i, s in enumerate(batch):
                    copy.write_row(raw_row(s, stream, stream, i + 1, compact))
        return clock.stop(sum(len(b) for b in batches))


# -- single-event appends, each writer on its own streams ----------------------

def _payloads(index: int) -> list[tuple[str, dict[str, Any]]]:
    base = index * RING
    return [(TYPES_CYCLE[i % len(TYPES_CYCLE)], payload(base + i)) for i in range(RING)]


TYPES_CYCLE = ("UserUpdated", "EmailChanged", "UserLoggedIn", "UserUpdated", "UserLoggedIn")


def single_ours(store: PostgreSQLEventStore, tag: str) -> Writer:
    """append_events of one event with the exact expected version."""
    meta = metadata(0)

    def make(index: int) -> tuple[Callable[[], int], Callable[[], None]]:
        streams = [f"{tag}-w{index}-s{j}" for j in range(STREAMS_PER_WRITER)]
        versions = [0] * len(streams)
        ring = _payloads(index)
        step = [0]

        def append() -> int:
            n = step[0]
            step[0] = n + 1
            j = n % len(streams)
            event_type, data = ring[n % RING]
            version = versions[j]
            store.append_events(streams[j], [EventRecord(
                aggregate_id=streams[j], aggregate_type=AGGREGATE_TYPE, event_type=event_type,
                event_data=data, aggregate_version=version + 1, metadata=meta,
            )], expected_version=version)
            versions[j] = version + 1
            return 1

        return append, lambda: None

    return make


def single_raw(url: str, table: str, tag: str) -> Writer:
    """One INSERT per transaction (autocommit off), one connection per thread."""
    meta = metadata(0).to_dict()
    text = f"INSERT INTO {table} ({RAW_COLUMNS}) VALUES ({', '.join(['%s'] * 14)})"

    def make(index: int) -> tuple[Callable[[], int], Callable[[], None]]:
        conn = connect(url, autocommit=False)
        streams = [f"{tag}-w{index}-s{j}" for j in range(STREAMS_PER_WRITER)]
        versions = [0] * len(streams)
        ring = _payloads(index)
        step = [0]

        def append() -> int:
            n = step[0]
            step[0] = n + 1
            j = n % len(streams)
            event_type, data = ring[n % RING]
            position = versions[j] + 1
            body = compact(data)
            size = len(body.encode())
            conn.execute(text, (
                uuid.uuid4(), streams[j], AGGREGATE_TYPE, event_type, 1, position, streams[j],
                position, body, compact(meta), datetime.now(UTC), "0" * 64, size, size,
            ))
            conn.commit()
            versions[j] = position
            return 1

        return append, conn.close

    return make


def single_eventsourcing(recorder: Any, tag: str) -> Writer:
    """eventsourcing's PostgresApplicationRecorder.insert_events of one StoredEvent.

    Its optimistic concurrency is the primary key (originator_id,
    originator_version): the version written is the expected one plus one.
    """
    from eventsourcing.persistence import StoredEvent

    def make(index: int) -> tuple[Callable[[], int], Callable[[], None]]:
        streams = [uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}-w{index}-s{j}")
                   for j in range(STREAMS_PER_WRITER)]
        versions = [0] * len(streams)
        ring = _payloads(index)
        step = [0]

        def append() -> int:
            n = step[0]
            step[0] = n + 1
            j = n % len(streams)
            event_type, data = ring[n % RING]
            version = versions[j] + 1
            recorder.insert_events([StoredEvent(
                originator_id=streams[j], originator_version=version,
                topic=f"identity.events:{event_type}", state=compact(data).encode(),
            )])
            versions[j] = version
            return 1

        return append, lambda: None

    return make


def eventsourcing_recorder(url: str, schema: str, pool_size: int) -> tuple[Any, Callable[[], None]]:
    """A PostgresApplicationRecorder on its own schema of the scratch database."""
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    with connect(url) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    datastore = PostgresDatastore(**conninfo(url), schema=schema, pool_size=pool_size)
    recorder = PostgresApplicationRecorder(datastore, events_table_name="stored_events")
    recorder.create_table()
    return recorder, datastore.close
