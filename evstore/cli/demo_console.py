"""``evstore demo --console``: after the demo, serve the web console until Ctrl-C.

The console runs on the demo's own database (the embedded PostgreSQL unless
DATABASE_URL is set), bound to 127.0.0.1. Without EVSTORE_CONSOLE_PASSWORD
(or EVSTORE_CONSOLE_TOKEN) a one-time operator password is made for this run
and printed, so the demo's jobs can be requeued or cancelled from the browser.
"""

from __future__ import annotations

import os
import secrets
import socket

from .common import console, database_url, err_console, settings

HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def _socket(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1: ``port`` when free, else any free port."""
    for candidate in (port, 0):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, candidate))
        except OSError:
            sock.close()
            continue
        sock.listen(128)
        return sock
    raise OSError(f"no free port on {HOST}")  # pragma: no cover


def serve_console(port: int | None = None) -> None:
    """Serve the console on 127.0.0.1 until Ctrl-C, printing its address first."""
    import uvicorn

    from evstore.console import create_console_app

    password = None
    if not (os.environ.get("EVSTORE_CONSOLE_PASSWORD") or os.environ.get("EVSTORE_CONSOLE_TOKEN")):
        password = secrets.token_urlsafe(12)
        os.environ["EVSTORE_CONSOLE_PASSWORD"] = password
    cfg = settings()
    wanted = port if port is not None else (getattr(cfg, "http_port", None) or DEFAULT_PORT)
    with database_url(cfg) as url:
        app = create_console_app(cfg.model_copy(update={"database_url": url}))
        sock = _socket(wanted)
        address = f"http://{HOST}:{sock.getsockname()[1]}/"
        console.print(f"\n[bold]web console:[/] {address}  (Ctrl-C to stop)", highlight=False)
        if password:
            console.print(f"operator password for this run: [bold]{password}[/] "
                          "(set EVSTORE_CONSOLE_PASSWORD to choose one)", highlight=False)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                               lifespan="off"))
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
    err_console.print("console stopped")
