"""A replay batch's events from the read replica (DATABASE_READ_URL) when it has them.

The replay's plan records the primary's WAL insert position after taking its
snapshot (``wal_lsn``): every transaction visible in that snapshot committed
before it. A batch reads its events (the same statement, the same snapshot
filter) on the standby once the standby has replayed that far (waiting up to
``WAIT_SECONDS``), else on the primary in the batch's own transaction, as
without a replica. A retried attempt always reads on the primary (a standby
may cancel a long query on a recovery conflict). The handlers' effects always
commit on the primary, in the batch's transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from evstore.core.jobs.replay import ReplaySelection, iter_batch_events
from evstore.core.store.persistence import EventRecord, EventStore

WAIT_SECONDS = 2.0


def plan_lsn(store: EventStore) -> str | None:
    """The position a replay's batches need the standby to have replayed (None: no replica)."""
    replica = getattr(store, "replica", None)
    return None if replica is None else str(replica.primary_insert_lsn())


class BatchEvents:
    """Iterable of a batch's events; ``source`` says where they were read ("primary" or "replica")."""

    def __init__(self, store: EventStore, conn: psycopg.Connection, selection: ReplaySelection,
                 snapshot: str, streams: Sequence[str], wal_lsn: str | None, attempt: int) -> None:
        replica = getattr(store, "replica", None)
        use = (replica is not None and wal_lsn is not None and attempt <= 1
               and replica.wait_replayed(wal_lsn, WAIT_SECONDS))
        self.source = "replica" if use else "primary"
        self._args: tuple[Any, ...] = (store, conn, selection, snapshot, streams)
        self._replica = replica if use else None

    def __iter__(self) -> Iterator[EventRecord]:
        store, conn, selection, snapshot, streams = self._args
        if self._replica is None:
            yield from _closing(iter_batch_events(store, conn, selection, snapshot, streams))
            return
        with self._replica.db.connection() as rconn, rconn.transaction():
            yield from _closing(iter_batch_events(store, rconn, selection, snapshot, streams))


def _closing(events: Iterator[EventRecord]) -> Iterator[EventRecord]:
    """The events; when left early (a handler failed), the cursor's close is allowed to fail.

    A failed batch's transaction is rolled back before the abandoned generator
    is collected, and its server-side cursor went with it: closing it then
    raised InvalidCursorName, printed as "Exception ignored in ..." on stderr
    (a line outside the JSON log).
    """
    try:
        for event in events:  # noqa: UP028  (`yield from` would close the cursor before `finally`)
            yield event
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            try:
                close()
            except psycopg.Error:
                pass
