"""The operations ASGI app: /livez, /readyz, /metrics (Starlette).

- ``/livez`` answers 200 at once and touches nothing: the process's event
  loop runs. It answers during start-up too (a liveness probe that waits on
  the database restarts healthy pods whenever the database is slow).
- ``/readyz`` is 200 when the process has started and the database is
  reachable, the schema current, the horizon advancing (and Redis reachable
  for processes that need it); else 503 with the reason, as JSON.
- ``/metrics`` is the Prometheus text: this process's instruments
  (:mod:`evstore.core.telemetry`, process and Python collectors) and the
  database-derived metrics (:class:`~.collector.StoreCollector`).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .collector import StoreCollector
from .health import Readiness


class Ops:
    """What one process serves on its operations port."""

    # The OpsServer (None: nothing listens), set by evstore.cli.serve.start_ops; Any, as
    # .server imports this module.
    server: Any

    def __init__(self, role: str, readiness: Readiness, collector: StoreCollector | None) -> None:
        self.role = role
        self.readiness = readiness
        self.collector = collector
        self.registry = CollectorRegistry(auto_describe=False)
        if collector is not None:
            self.registry.register(collector)

    def set_urls(self, database_url: str | None, redis_url: str | None = None) -> None:
        """The URLs once known (an embedded server is started after the HTTP server)."""
        self.readiness.database_url = database_url
        if redis_url is not None:
            self.readiness.redis_url = redis_url
        if self.collector is not None:
            self.collector.database_url = database_url

    def metrics_text(self) -> bytes:
        return generate_latest(REGISTRY) + generate_latest(self.registry)

    def close(self) -> None:
        if self.collector is not None:
            self.collector.close()


def ops_routes(ops: Ops) -> list[BaseRoute]:
    async def livez(request: Request) -> Response:
        return JSONResponse({"status": "alive", "role": ops.role})

    def readyz(request: Request) -> Response:
        report = ops.readiness.report()
        body: dict[str, Any] = {"role": ops.role, **report.as_json()}
        return JSONResponse(body, status_code=200 if report.ready else 503)

    def metrics(request: Request) -> Response:
        return Response(ops.metrics_text(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/livez", livez, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def create_ops_app(ops: Ops, extra_routes: list[BaseRoute] | None = None) -> Starlette:
    """The app of a worker pool, scheduler or reader process (no console)."""
    return Starlette(routes=[*ops_routes(ops), *(extra_routes or [])])
