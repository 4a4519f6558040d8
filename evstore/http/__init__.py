"""Health and metrics over HTTP for every long-running evstore process (docs/operations.md).

``/livez`` (no dependencies), ``/readyz`` (database, schema, horizon, Redis;
503 with the reason), ``/metrics`` (Prometheus). Processes start it with
:func:`start_ops_server`; ``evstore serve`` serves the same routes with the
web console mounted after them.
"""

from __future__ import annotations

from .app import Ops, create_ops_app, ops_routes
from .health import Readiness, ReadinessReport
from .server import DEFAULT_HOST, OpsServer, build_ops, start_ops_server

__all__ = ["DEFAULT_HOST", "Ops", "OpsServer", "Readiness", "ReadinessReport", "build_ops",
           "create_ops_app", "ops_routes", "start_ops_server"]
