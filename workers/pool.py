"""Start and stop `dramatiq` worker processes: for `evstore worker`, the demo, tests, benchmarks.

A pool is one `dramatiq` master process (in a session of its own) with
``processes`` worker processes of ``threads`` threads each, all running
``evstore.workers.actors``. Any number of pools, on any machines, may serve
the same Redis and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

BROKER_TARGET = "evstore.workers.actors:broker"


def dramatiq_command(processes: int = 2, threads: int = 8, extra: Sequence[str] = ()) -> list[str]:
    """The `dramatiq` command line that runs evstore's workers.

    Neither Python (``-P``) nor Dramatiq (an empty ``--path``; its default is
    ".") puts the current folder on ``sys.path``: workers import evstore, and
    the operator's modules from their installed packages or PYTHONPATH only.
    """
    if processes < 1 or threads < 1:
        raise ValueError(f"processes and threads must be >= 1 (got {processes}, {threads})")
    return [sys.executable, "-P", "-m", "dramatiq", BROKER_TARGET, "--processes", str(processes),
            "--threads", str(threads), "--path", "--skip-logging", *extra]


def worker_env(
    database_url: str, redis_url: str, *, handler_modules: Sequence[str] = (), threads: int = 8,
    base: Mapping[str, str] | None = None, extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["DATABASE_URL"] = database_url
    env["REDIS_URL"] = redis_url
    modules = [m for m in env.get("EVSTORE_HANDLER_MODULES", "").split(",") if m.strip()]
    modules += [m for m in handler_modules if m not in modules]
    if modules:
        env["EVSTORE_HANDLER_MODULES"] = ",".join(modules)
    # A connection per running batch, plus the sweeper and handlers' own reads.
    pool = max(int(env.get("EVENT_STORE_POOL_SIZE", "0") or 0), threads * 2 + 2)
    env["EVENT_STORE_POOL_SIZE"] = str(min(pool, 500))
    env.setdefault("PYTHONUNBUFFERED", "1")
    # An idle Redis consumer backs off up to this many ms between fetches (Dramatiq's
    # default, 1,000, delays every stage of a job, batches and finalize, by up to a
    # second); 200 answers sooner for about five small Redis calls a second per queue.
    env.setdefault("dramatiq_worker_timeout", "200")
    if extra:
        env.update(extra)
    return env


class WorkerPool:
    def __init__(
        self, database_url: str, redis_url: str, *, processes: int = 1, threads: int = 4,
        handler_modules: Sequence[str] = (), env: Mapping[str, str] | None = None,
        log_path: Path | None = None, cwd: Path | None = None, inherit_output: bool = False,
    ) -> None:
        self.command = dramatiq_command(processes, threads)
        self.env = worker_env(database_url, redis_url, handler_modules=handler_modules,
                              threads=threads, extra=env)
        self.log_path = log_path
        self.cwd = cwd
        self.inherit_output = inherit_output
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> WorkerPool:
        out: Any = None if self.inherit_output else subprocess.DEVNULL
        if self.log_path is not None:
            self._log = open(self.log_path, "ab")
            out = self._log
        self.process = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=out,
                                        cwd=self.cwd, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the master and every worker process at once (a machine lost)."""
        self._signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def terminate(self) -> None:
        """SIGTERM without waiting (stop several pools at once, then :meth:`stop` each)."""
        if self.alive():
            self._signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (workers finish their current batch), then SIGKILL after ``timeout``."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=30)
        # Worker processes left behind by a killed master.
        self._signal(signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode

    def _signal(self, sig: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(predicate: Any, timeout: float, interval: float = 0.1, what: str = "a condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; raise TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
