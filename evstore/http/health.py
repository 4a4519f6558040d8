"""What /readyz checks: the database, the schema, the global-order horizon, Redis.

Each check opens its own short-lived connection with tight time-outs (never
the process's pool: a probe must not queue behind busy work, nor hang), and
the answer is kept for ``cache_seconds`` so a scrape storm costs one look.
``/livez`` checks nothing at all (see app.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from evstore.core import sql as named_sql
from evstore.core.migrations import current_version, latest_version
from evstore.core.redaction import redact

CONNECT_TIMEOUT = 3
STATEMENT_TIMEOUT_MS = 3000


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class ReadinessReport:
    ready: bool
    checks: list[Check] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.ok)

    def as_json(self) -> dict[str, Any]:
        return {"ready": self.ready, "reason": self.reason or None,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks]}


def connect(url: str) -> psycopg.Connection:
    """One autocommit connection that gives up quickly (for probes and scrapes)."""
    return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                           options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line: str = redact(text.splitlines()[0] if text else type(exc).__name__)
    return line


class Readiness:
    """The readiness of one process: started, and its dependencies reachable and current.

    ``horizon_stall_seconds``: the oldest transaction holding the append lock
    may run this long before the horizon counts as stalled (readers of the
    global order cannot move past it).
    """

    def __init__(self, database_url: str | None, schema: str, *, redis_url: str | None = None,
                 horizon_stall_seconds: float = 60.0, cache_seconds: float = 1.0) -> None:
        self.database_url = database_url
        self.schema = schema
        self.redis_url = redis_url
        self.horizon_stall_seconds = horizon_stall_seconds
        self.cache_seconds = cache_seconds
        self._started = threading.Event()
        self._starting_detail = "the process is starting"
        self._lock = threading.Lock()
        self._cached: tuple[float, ReadinessReport] | None = None
        self.extra_checks: list[Callable[[], Check]] = []
        self.redis_client: Any = None  # a client of the process's own (e.g. its broker's) to ping

    def add_check(self, check: Callable[[], Check]) -> None:
        """A check of the process's own (e.g. its worker processes are alive)."""
        self.extra_checks.append(check)

    def mark_started(self) -> None:
        self._started.set()

    def mark_starting(self, detail: str) -> None:
        self._starting_detail = detail
        self._started.clear()

    @property
    def started(self) -> bool:
        return self._started.is_set()

    def report(self) -> ReadinessReport:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            report = self._check()
            self._cached = (time.monotonic(), report)
            return report

    def _check(self) -> ReadinessReport:
        checks: list[Check] = []
        if not self.started:
            checks.append(Check("process", False, self._starting_detail))
        checks.extend(self._database_checks())
        if self.redis_url is not None:
            checks.append(self._redis_check())
        for extra in self.extra_checks:
            try:
                checks.append(extra())
            except Exception as exc:
                checks.append(Check(getattr(extra, "__name__", "check"), False, _first_line(exc)))
        return ReadinessReport(all(c.ok for c in checks), checks)

    def _database_checks(self) -> list[Check]:
        if not self.database_url:
            return [Check("database", False, "no DATABASE_URL configured")]
        try:
            with connect(self.database_url) as conn:
                conn.execute(named_sql.load("store", "ping"))
                checks = [Check("database", True, "reachable")]
                version, latest = current_version(conn, self.schema), latest_version()
                if version != latest:
                    checks.append(Check("schema", False, f"schema {self.schema!r} at migration {version} "
                                        f"of {latest}: run 'evstore init'"))
                    return checks
                checks.append(Check("schema", True, f"at migration {latest}"))
                row = conn.execute(named_sql.load("ops", "horizon_status", self.schema)).fetchone()
        except psycopg.Error as exc:
            return [Check("database", False, _first_line(exc))]
        assert row is not None
        horizon, next_xid, oldest = int(row[0]), int(row[1]), float(row[2])
        if oldest > self.horizon_stall_seconds:
            checks.append(Check(
                "horizon", False,
                f"stalled: an appending transaction has run {oldest:.0f} s (limit "
                f"{self.horizon_stall_seconds:g} s); readers of the global order wait behind it"))
        else:
            checks.append(Check("horizon", True, f"advancing ({next_xid - horizon} transaction(s) "
                                f"in flight, oldest {oldest:.1f} s)"))
        return checks

    def _redis_check(self) -> Check:
        import redis

        if self.redis_client is not None:
            try:
                self.redis_client.ping()
            except (redis.RedisError, OSError) as exc:
                return Check("redis", False, _first_line(exc))
            return Check("redis", True, "reachable")
        if not self.redis_url:
            return Check("redis", False, "no REDIS_URL configured yet")
        try:
            client = redis.Redis.from_url(self.redis_url, socket_timeout=CONNECT_TIMEOUT,
                                          socket_connect_timeout=CONNECT_TIMEOUT)
            try:
                client.ping()
            finally:
                client.close()
        except (redis.RedisError, OSError, ValueError) as exc:
            return Check("redis", False, _first_line(exc))
        return Check("redis", True, "reachable")
