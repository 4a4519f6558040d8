"""Waking live readers when events are appended: PostgreSQL LISTEN/NOTIFY.

Migration 0003 adds a statement-level trigger on ``events`` that notifies the
channel ``evstore_events_<schema>`` while some live reader listens. A
notification only says "look again": the reader then reads the global order
from its checkpoint, so a lost or merged notification costs latency, never an
event. Without a connection for LISTEN (or after it drops) readers poll.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from psycopg import sql

from ..db import Database

log = logging.getLogger(__name__)


def channel_for(schema: str) -> str:
    return f"evstore_events_{schema}"


class Listener:
    """A dedicated connection that LISTENs on the store's channel."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: psycopg.Connection[Any] | None = None
        self.notifications = 0
        self._retry_at = 0.0
        self._connect()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def _connect(self) -> None:
        pool: Any = self._db.pool
        conninfo = self._db.url or pool.conninfo
        kwargs = {k: v for k, v in (getattr(pool, "kwargs", None) or {}).items()
                  if k not in ("autocommit",)}
        try:
            conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5, **kwargs)
            channel = sql.Identifier(channel_for(self._db.schema)).as_string(None)
            conn.execute(self._db.sql("reader", "listen", channel=channel))
        except psycopg.Error as exc:
            log.warning("LISTEN unavailable, polling instead: %s", exc)
            self._conn = None
            self._retry_at = time.monotonic() + 5.0
            return
        self._conn = conn

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a notification; True if one came."""
        if not self.connected:
            if time.monotonic() >= self._retry_at:
                self._connect()
            if not self.connected:
                time.sleep(timeout)
                return False
        assert self._conn is not None
        got = False
        try:
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                got = True
            if got:  # several appends wake us once
                for _ in self._conn.notifies(timeout=0.0):
                    pass
        except psycopg.Error as exc:
            log.warning("LISTEN connection lost, polling until it is back: %s", exc)
            self.close()
            self._retry_at = time.monotonic() + 1.0
            return True  # read once more: something may have been missed
        if got:
            self.notifications += 1
        return got

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
