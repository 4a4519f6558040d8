"""Small helpers shared by the storage-core integration tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg

from evstore import EventMetadata, EventRecord


def ev(
    aggregate_id: str = "1",
    event_type: str = "UserCreated",
    data: dict[str, Any] | None = None,
    *,
    aggregate_type: str = "User",
    aggregate_version: int = 0,
    created_at: datetime | None = None,
    metadata: EventMetadata | None = None,
    event_id: uuid.UUID | None = None,
) -> EventRecord:
    """An event with sensible defaults; only what a test cares about needs saying."""
    return EventRecord(
        aggregate_id=aggregate_id,
        aggregate_type=aggregate_type,
        event_type=event_type,
        event_data={"n": 1} if data is None else data,
        aggregate_version=aggregate_version,
        metadata=metadata or EventMetadata(user_id="tester"),
        event_id=event_id or uuid.uuid4(),
        created_at=created_at or datetime.now(UTC),
    )


@contextmanager
def raw(url: str, autocommit: bool = True) -> Iterator[psycopg.Connection]:
    """A plain psycopg connection to the test database (for tampering and counting)."""
    with psycopg.connect(url, autocommit=autocommit) as conn:
        yield conn


@contextmanager
def tamper(url: str) -> Iterator[psycopg.Connection]:
    """A connection that rewrites events as an attacker with the owner's credential would.

    The append-only trigger lets a transaction through that sets
    evstore.rewrite, which the owner can do: what stops such a rewrite from
    going unnoticed is the keyed checksum, whose secret is not in the database.
    """
    with psycopg.connect(url) as conn:
        conn.execute("SELECT set_config('evstore.rewrite', 'on', true)")
        yield conn
        conn.commit()


def counts(url: str, schema: str = "events") -> dict[str, Any]:
    """Rows in each table a failed append must leave untouched, plus every stream version."""
    with raw(url) as conn:
        out: dict[str, Any] = {}
        for table in ("events", "streams", "event_types"):
            row = conn.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()
            assert row is not None
            out[table] = row[0]
        out["versions"] = dict(
            conn.execute(f'SELECT stream_id, version FROM "{schema}".streams').fetchall()
        )
        return out


def wait_visible(store: Any, count: int, deadline: float = 60.0) -> list[Any]:
    """Every event read_all can see, once there are `count` of them.

    read_all only returns rows of transactions older than the oldest one still
    running on the server, and other sessions share the server: wait for the
    horizon to pass our writes instead of assuming it already has.
    """
    end = time.monotonic() + deadline
    while True:
        events = list(store.iter_all())
        if len(events) >= count:
            return events
        assert time.monotonic() < end, f"read_all shows {len(events)} of {count} events"
        time.sleep(0.02)
