"""Connections: one psycopg pool per store, opened explicitly and checked early.

A wrong DATABASE_URL fails at start-up with the server's own words, not after
a pool time-out.
"""

from __future__ import annotations

import re

import psycopg
from psycopg.types.numeric import IntLoader
from psycopg_pool import ConnectionPool

from .errors import StoreUnavailableError

XID8_OID = 5069


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def configure(conn: psycopg.Connection) -> None:
    conn.adapters.register_loader(XID8_OID, IntLoader)
    conn.execute("SET TIME ZONE 'UTC'")


def probe(url: str, timeout: int = 5) -> None:
    """Connect once, so a bad URL or a down server is reported clearly."""
    try:
        with psycopg.connect(url, connect_timeout=timeout, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreUnavailableError(f"cannot connect to {redact(url)}: {detail}") from exc


def make_pool(url: str, *, max_size: int = 10, min_size: int = 1, name: str = "evstore") -> ConnectionPool:
    probe(url)
    pool = ConnectionPool(
        url,
        min_size=min(min_size, max_size),
        max_size=max_size,
        kwargs={"autocommit": True},
        configure=configure,
        open=False,
        name=name,
        # A caller waits at most this long for a connection when the server is gone.
        timeout=10,
    )
    pool.open(wait=True, timeout=30)
    return pool
