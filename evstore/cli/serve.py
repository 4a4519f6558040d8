"""``evstore serve``: the store's HTTP endpoints for a store-only deployment.

/livez, /readyz and /metrics (evstore/http), then, unless ``--no-console``,
the web console (evstore/console) mounted at "/". uvicorn, bound to
127.0.0.1 unless ``--host`` says otherwise (docs/operations.md).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .common import err_console, fail, handle_errors, settings

DEFAULT_SERVE_PORT = 8080


def build_app(cfg: Any, database_url: str, *, console: bool = True) -> tuple[Any, Any]:
    """The Starlette app of ``evstore serve`` and its Ops (routes first, the console after)."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from evstore.http import build_ops, ops_routes

    ops = build_ops("serve", cfg, database_url)
    routes = list(ops_routes(ops))
    if console:
        try:
            from evstore.console import create_console_app
        except ImportError:
            err_console.print("[dim]the web console is not installed: serving /livez /readyz "
                              "/metrics only[/]")
        else:
            # The console opens its own store: on the URL served (the embedded one too).
            routes.append(Mount("/", app=create_console_app(
                cfg.model_copy(update={"database_url": database_url}))))
    return Starlette(routes=routes), ops


def serve(
    host: Annotated[str | None, typer.Option(
        "--host", help="Address to listen on (default EVSTORE_HTTP_HOST or 127.0.0.1; "
                       "0.0.0.0 for every interface).")] = None,
    port: Annotated[int | None, typer.Option(
        "--port", min=0, max=65535,
        help=f"Port (default EVSTORE_HTTP_PORT or {DEFAULT_SERVE_PORT}; 0 picks a free one).")] = None,
    no_console: Annotated[bool, typer.Option(
        "--no-console", help="Serve /livez /readyz /metrics only, not the web console.")] = False,
) -> None:
    """Serve /livez, /readyz, /metrics and the web console over HTTP until stopped."""
    import uvicorn

    from evstore.http.server import uvicorn_config
    from evstore.workers.logs import configure_logging

    from .common import database_url

    configure_logging()
    cfg = settings()
    bind_host = host or cfg.http_host
    bind_port = port if port is not None else (cfg.http_port if cfg.http_port is not None
                                               else DEFAULT_SERVE_PORT)
    with database_url(cfg) as url:
        app, ops = build_app(cfg, url, console=not no_console)
        server = uvicorn.Server(uvicorn_config(app, bind_host, bind_port))
        ops.readiness.mark_started()
        err_console.print(f"[dim]serving on http://{bind_host}:{bind_port} (/livez /readyz /metrics"
                          f"{'' if no_console else ', console at /'}); Ctrl-C to stop[/]",
                          highlight=False)
        try:
            server.run()
        except SystemExit:  # uvicorn's start-up failure (the reason is in its log line)
            pass
        finally:
            ops.close()
        if not server.started:
            raise fail(f"could not listen on {bind_host}:{bind_port} (in use? see the line above)", 3)


def register(app: typer.Typer) -> None:
    app.command("serve")(handle_errors(serve))


# -- the HTTP endpoints of the other long-running commands (worker, scheduler) ---

HttpPort = Annotated[int | None, typer.Option(
    "--http-port", min=0, max=65535, show_default=False,
    help="Serve /livez /readyz /metrics on this port (default EVSTORE_HTTP_PORT; unset: off).")]
HttpHost = Annotated[str | None, typer.Option(
    "--http-host", show_default=False,
    help="Address of those endpoints (default EVSTORE_HTTP_HOST or 127.0.0.1).")]


def start_ops(role: str, host: str | None, port: int | None, *, needs_redis: bool = False,
              worker_capacity: int | None = None) -> Any:
    """Start the process's HTTP endpoints first thing (/livez answers during start-up)."""
    from evstore.http.server import start_process_ops
    from evstore.workers.logs import configure_logging

    configure_logging()  # this process's lines in the same format as its workers'
    ops, server = start_process_ops(role, needs_redis=needs_redis, host=host, port=port,
                                    worker_capacity=worker_capacity)
    ops.server = server  # (it logs http.listening with its host and port)
    return ops


def ops_started(ops: Any, database_url: str, redis_url: str | None = None,
                alive: Any = None, what: str = "workers", pool: Any = None) -> None:
    """The process is up: its URLs (embedded servers are known only now), its
    connection pool (saturation metrics) and readiness."""
    from evstore.http.health import Check

    ops.set_urls(database_url, redis_url)
    if pool is not None and ops.collector is not None:
        ops.collector.local_pools["primary"] = pool
    if alive is not None:
        ops.readiness.add_check(lambda: Check(what, bool(alive()), "running" if alive() else "stopped"))
    ops.readiness.mark_started()
