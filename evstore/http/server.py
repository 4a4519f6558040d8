"""Run an ASGI app with uvicorn in a background thread of a long-running process.

The worker pool, the scheduler and reader processes call
:func:`start_ops_server` first thing (``/livez`` answers while they start),
then :meth:`Readiness.mark_started` once they are up. ``evstore serve`` runs
uvicorn in its main thread instead (cli/serve.py).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
import uvicorn

from .app import Ops, create_ops_app
from .collector import StoreCollector
from .health import Readiness

log = structlog.get_logger("evstore.http")

DEFAULT_HOST = "127.0.0.1"


def uvicorn_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """Uvicorn without its own logging setup (structlog's is the process's) or access log."""
    return uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                          lifespan="off", server_header=False, timeout_graceful_shutdown=5)


class OpsServer:
    """uvicorn serving ``app`` in a daemon thread; ``port`` 0 picks a free port (see ``.port``)."""

    def __init__(self, app: Any, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.server = uvicorn.Server(uvicorn_config(app, host, port))
        self.host = host
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> OpsServer:
        self._thread = threading.Thread(target=self.server.run, name="evstore-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the HTTP server could not listen on {self.host}:"
                                   f"{self.server.config.port} (port in use?)")
            if time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start in time")
            time.sleep(0.01)
        log.info("http.listening", host=self.host, port=self.port)
        return self

    @property
    def port(self) -> int:
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self.server.config.port)

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def build_ops(role: str, settings: Any, database_url: str | None, *, redis_url: str | None = None,
              worker_capacity: int | None = None, local_pools: dict[str, Any] | None = None,
              metrics_from_database: bool = True) -> Ops:
    readiness = Readiness(database_url, settings.schema_name, redis_url=redis_url,
                          horizon_stall_seconds=settings.horizon_stall_seconds)
    collector = (StoreCollector(database_url, settings, read_url=settings.database_read_url,
                                worker_capacity=worker_capacity, local_pools=local_pools)
                 if metrics_from_database else None)
    return Ops(role, readiness, collector)


def start_ops_server(ops: Ops, host: str | None, port: int | None) -> OpsServer | None:
    """Serve /livez /readyz /metrics for ``ops`` on ``host:port``; None when ``port`` is None (off)."""
    if port is None:
        return None
    return OpsServer(create_ops_app(ops), host or DEFAULT_HOST, port).start()


def start_process_ops(role: str, *, settings: Any = None, needs_redis: bool = False,
                      host: str | None = None, port: int | None = None,
                      worker_capacity: int | None = None,
                      local_pools: dict[str, Any] | None = None) -> tuple[Ops, OpsServer | None]:
    """For a long-running process (worker pool, scheduler, your reader): its Ops and HTTP server.

    ``port`` (else EVSTORE_HTTP_PORT) None means off: the Ops still exists
    (readiness can be asked in-process) but nothing listens. Call
    ``ops.readiness.mark_started()`` once the process is up, ``ops.close()``
    and ``server.stop()`` at the end.
    """
    from evstore.core.config import load_settings

    cfg = settings or load_settings()
    ops = build_ops(role, cfg, cfg.database_url, redis_url=cfg.redis_url if needs_redis else None,
                    worker_capacity=worker_capacity, local_pools=local_pools)
    if needs_redis and ops.readiness.redis_url is None:
        ops.readiness.redis_url = ""
    server = start_ops_server(ops, host or cfg.http_host, port if port is not None else cfg.http_port)
    return ops, server
