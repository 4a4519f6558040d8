"""A scratch database of the benchmark's own, and the raw baseline tables in it.

The run creates ``evstore_bench_<pid>`` on the server of DATABASE_URL, does
everything inside it, and drops it at the end (also on Ctrl-C or SIGTERM).
No other database is touched: the admin connection only issues CREATE and
DROP DATABASE for that one name.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.numeric import IntLoader

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
XID8_OID = 5069
_OURS = re.compile(r"^evstore_bench_\d+(_\d+)?$")
_made = [0]  # scratch databases made by this process so far


def with_database(url: str, dbname: str) -> str:
    """The same URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def _on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """Create ``evstore_bench_<pid>``, yield its URL, drop it afterwards.

    A second scratch database of the same process (nested or later) gets a
    suffix, ``evstore_bench_<pid>_<n>``, so it never replaces the first.
    """
    _made[0] += 1
    name = f"evstore_bench_{os.getpid()}" + (f"_{_made[0] - 1}" if _made[0] > 1 else "")
    assert _OURS.match(name)
    ident = sql.Identifier(name)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield with_database(url, name)
    finally:
        signal.signal(signal.SIGTERM, previous)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    """A plain connection configured like the store's (UTC, xid8 read as int)."""
    conn = psycopg.connect(url, autocommit=autocommit)
    conn.adapters.register_loader(XID8_OID, IntLoader)
    conn.execute("SET TIME ZONE 'UTC'")
    if not autocommit:
        conn.commit()
    return conn


def conninfo(url: str) -> dict[str, Any]:
    """host, port, user, password, dbname of a URL (for eventsourcing's datastore)."""
    info = conninfo_to_dict(url)
    return {
        "dbname": info.get("dbname", "postgres"),
        "host": info.get("host", "127.0.0.1"),
        "port": str(info.get("port", "5432")),
        "user": info.get("user", "postgres"),
        "password": info.get("password", ""),
    }


# The raw baseline's table: a plain (unpartitioned) copy of the store's events
# table with the same columns, defaults, constraints and indexes (LIKE ...
# INCLUDING ALL), and no streams table, no locks and no checksum work.
RAW_TABLE = """
CREATE SCHEMA {schema};
CREATE TABLE {schema}.events (LIKE {store}.events INCLUDING ALL);
"""

RAW_COLUMNS = (
    "event_id, aggregate_id, aggregate_type, event_type, event_version, aggregate_version, "
    "stream_id, stream_position, event_data, metadata, created_at, checksum, "
    "original_size, stored_size"
)


def create_raw_table(url: str, schema: str, store_schema: str = "bench") -> str:
    """Create the raw baseline table in ``schema``, shaped like the store's; its quoted name."""
    quoted = sql.Identifier(schema).as_string(None)
    store = sql.Identifier(store_schema).as_string(None)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(RAW_TABLE.format(schema=quoted, store=store).encode())
    return f"{quoted}.events"
