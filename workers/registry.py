"""What a process may run: only code its operator configured, never code a row names.

A job row (``jobs.kind``, its parameters) can be written by anyone holding a
database credential, and its message by anyone reaching Redis. So a row only
*names* things, and each name is looked up in what this process registered
from its own configuration:

- **job kinds**: evstore's built-in kinds (a fixed table in :mod:`.kinds`),
  and kinds registered by the operator's modules;
- **replay handlers**: registered by the modules in ``EVSTORE_HANDLER_MODULES``
  (or ``evstore worker --handlers``), imported at start-up;
- **aggregate classes** of snapshot builds: the ``module:Class`` paths in
  ``EVSTORE_AGGREGATE_CLASSES``, or classes the operator's modules register
  with :func:`register_aggregate_class`.

An unknown name fails with :class:`InvalidJobError` naming it, and nothing is
imported. Configured modules are imported without the current folder on
``sys.path`` (unless it is named in ``PYTHONPATH``): a file dropped in the
folder a worker was started from is never picked up.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from evstore.core.archive.guard import register_snapshot_class
from evstore.core.errors import ConfigurationError, InvalidJobError
from evstore.core.snapshots.aggregate import class_path, import_class

from .settings import JobSettings, load_job_settings

_LOCK = threading.Lock()
_CLASSES: dict[str, type[Any]] = {}


def _implicit_cwd(entry: str, explicit: set[str]) -> bool:
    """A ``sys.path`` entry that is the current folder and was not asked for in PYTHONPATH."""
    if entry in explicit:
        return False
    if entry in ("", "."):
        return True
    try:
        return os.path.realpath(entry) == os.path.realpath(os.getcwd())
    except OSError:
        return False


def _explicit_paths() -> set[str]:
    entries = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return set(entries) | {os.path.realpath(p) for p in entries}


def drop_implicit_cwd() -> None:
    """Remove the current folder from ``sys.path`` for good (worker processes)."""
    explicit = _explicit_paths()
    sys.path[:] = [p for p in sys.path if not _implicit_cwd(p, explicit)]


@contextlib.contextmanager
def no_implicit_cwd() -> Iterator[None]:
    """Import with the current folder off ``sys.path`` (then put ``sys.path`` back)."""
    saved = list(sys.path)
    drop_implicit_cwd()
    try:
        yield
    finally:
        sys.path[:] = saved


def import_configured_modules(modules: Iterable[str]) -> list[str]:
    """Import each configured module (registering its handlers, kinds, classes)."""
    done = []
    for module in dict.fromkeys(modules):
        if module == "__main__":
            continue
        try:
            with no_implicit_cwd():
                importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(
                f"cannot import replay handler module {module!r}: {exc} "
                "(check EVSTORE_HANDLER_MODULES / --handlers and the worker's PYTHONPATH; "
                "the current folder is not searched)"
            ) from exc
        done.append(module)
    return done


def load_configured(settings: JobSettings | None = None, extra: Iterable[str] = ()) -> list[str]:
    """Import the modules of EVSTORE_HANDLER_MODULES and ``extra``; the ones imported."""
    settings = settings or load_job_settings()
    return import_configured_modules([*settings.modules, *extra])


def register_aggregate_class(cls: type[Any]) -> type[Any]:
    """Allow snapshot builds of ``cls`` in this process (usable as a decorator)."""
    if not isinstance(cls, type):
        raise TypeError(f"register_aggregate_class takes a class (got {cls!r})")
    with _LOCK:
        _CLASSES[class_path(cls)] = cls
    with contextlib.suppress(ConfigurationError):  # no aggregate_type: not guarded
        register_snapshot_class(cls)  # the archive's snapshot guard (issue 13)
    return cls


def aggregate_class(path: str, settings: JobSettings | None = None) -> type[Any]:
    """The configured aggregate class named ``path``; InvalidJobError if it is not configured."""
    if not isinstance(path, str) or not path:
        raise InvalidJobError(f"aggregate_class must be a 'module:Class' name (got {path!r})")
    with _LOCK:
        found = _CLASSES.get(path)
    if found is not None:
        return found
    configured = (settings or load_job_settings()).aggregate_class_paths
    if path not in configured:
        known = ", ".join(sorted({*configured, *_CLASSES})) or "none"
        raise InvalidJobError(
            f"aggregate class {path!r} is not configured on this process (configured: {known}; "
            "add it to EVSTORE_AGGREGATE_CLASSES or register it with register_aggregate_class "
            "in a module of EVSTORE_HANDLER_MODULES)"
        )
    try:
        with no_implicit_cwd():
            cls: type[Any] = import_class(path)
    except ConfigurationError as exc:
        raise InvalidJobError(f"EVSTORE_AGGREGATE_CLASSES: {exc}") from exc
    with _LOCK:
        _CLASSES[path] = _CLASSES[class_path(cls)] = cls
    return cls
