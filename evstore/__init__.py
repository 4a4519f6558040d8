"""evstore: event persistence and replay on partitioned PostgreSQL.

The storage core is importable on its own (``from evstore import
PostgreSQLEventStore``); workers, schedules and the command line live in
``evstore.workers``, ``evstore.schedules`` and ``evstore.cli``.
"""

from __future__ import annotations

from evstore.core import *  # noqa: F403
from evstore.core import __all__ as __all__

__version__ = "0.1.0"

# The workers' names need Dramatiq (the ``workers`` extra): imported on first use.
_WORKER_NAMES = {"EventReplayService", "ReplayConfig", "ReplayResult", "register_event_handler"}


def __getattr__(name: str) -> object:
    if name in _WORKER_NAMES:
        import evstore.workers

        return getattr(evstore.workers, name)
    raise AttributeError(f"module 'evstore' has no attribute {name!r}")
