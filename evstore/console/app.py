"""The console as one Starlette application (``evstore serve`` mounts it at "/")."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from evstore.core.config import Settings
from evstore.core.errors import EventStoreError

from . import routes
from .state import HERE, Console


def create_console_app(settings: Settings) -> Starlette:
    """The console as a Starlette app (``evstore serve`` mounts it at "/")."""
    console = Console(settings)

    def unavailable(request: Request, exc: Exception) -> Response:
        # The database down, a schema behind: one line on a page, not a traceback.
        return console.message(request, "Unavailable", str(exc), 503)

    app = Starlette(routes=[
        *routes.build(console),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ], exception_handlers={EventStoreError: unavailable})
    app.state.console = console
    return app
