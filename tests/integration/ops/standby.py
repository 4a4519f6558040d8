"""A PostgreSQL 15 primary and a hot standby of it on this machine (docs: /work/shared/SERVICES.md).

initdb, pg_basebackup -R, two servers on free ports, run as the ``postgres``
OS user when we are root (the binaries refuse to run as root). Fast and
unsafe settings (fsync off): test data only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from .helpers import free_port

BIN = Path(os.environ.get("EVSTORE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def available() -> str | None:
    """Why a pair cannot be started here (None: it can)."""
    if not (BIN / "pg_ctl").exists():
        return f"no PostgreSQL binaries in {BIN} (set EVSTORE_PG_BIN)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser"
    return None


class StandbyPair:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="evstore-standby-"))
        self.primary_port = free_port()
        self.standby_port = free_port()

    def _run(self, *args: str) -> None:
        command = [str(BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}")

    def _options(self, port: int) -> str:
        return (f"-p {port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c max_connections=60 -c shared_buffers=32MB")

    def start(self) -> StandbyPair:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        primary, standby = self.dir / "primary", self.dir / "standby"
        self._run("initdb", "-D", str(primary), "-A", "trust", "-U", "postgres", "--no-sync")
        with open(primary / "pg_hba.conf", "a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        self._run("pg_ctl", "-D", str(primary), "-o", self._options(self.primary_port),
                  "-l", str(self.dir / "p.log"), "start", "-w")
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
                  "-D", str(standby), "-R", "-X", "stream")
        self._run("pg_ctl", "-D", str(standby), "-o", self._options(self.standby_port),
                  "-l", str(self.dir / "s.log"), "start", "-w")
        with psycopg.connect(self.standby_url, autocommit=True) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        return self

    @property
    def primary_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.primary_port}/postgres"

    @property
    def standby_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.standby_port}/postgres"

    def wait_caught_up(self, deadline: float = 30.0) -> None:
        """Until the standby has replayed everything the primary had flushed when asked."""
        with psycopg.connect(self.primary_url, autocommit=True) as p:
            (lsn,) = p.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()  # type: ignore[misc]
        end = time.monotonic() + deadline
        with psycopg.connect(self.standby_url, autocommit=True) as s:
            while time.monotonic() < end:
                row = s.execute("SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())",
                                [lsn]).fetchone()
                if row is not None and row[0] <= 0:
                    return
                time.sleep(0.05)
        raise TimeoutError("the standby did not catch up")

    def stop(self) -> None:
        for name in ("standby", "primary"):
            if (self.dir / name / "postmaster.pid").exists():
                try:
                    self._run("pg_ctl", "-D", str(self.dir / name), "stop", "-m", "immediate", "-w")
                except RuntimeError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)
