"""The console as one Starlette application (``evstore serve`` mounts it at "/")."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from evstore.core.config import Settings

from . import routes
from .state import HERE, Console


def create_console_app(settings: Settings) -> Starlette:
    """The console as a Starlette app (``evstore serve`` mounts it at "/")."""
    console = Console(settings)
    app = Starlette(routes=[
        *routes.build(console),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ])
    app.state.console = console
    return app
