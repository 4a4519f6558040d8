"""A failed batch's connection is closed on purpose (core/jobs/batch_runs.py): the
pool discards it without a warning per failed attempt; a connection lost any other
way is still warned about."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from evstore.core.db import close_on_purpose


def test_only_a_connection_lost_by_accident_is_warned_about(
    store: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    with store.db.connection() as conn:
        close_on_purpose(conn)
    with store.db.connection() as conn:
        conn.close()  # as a dropped network connection would leave it
    with store.db.connection() as conn:  # the pool still serves
        assert conn.execute("SELECT 1").fetchone() == (1,)
    warned = [r for r in caplog.records
              if r.name == "psycopg.pool" and "discarding closed connection" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING
