"""What one worker process shares between its threads: the store, the engine.

Created on first use inside the worker process (after Dramatiq forked it), so
no connection crosses a fork.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from .engine import JobEngine
from .settings import JobSettings

if TYPE_CHECKING:
    from dramatiq import Broker

_lock = threading.Lock()
_engine: JobEngine | None = None
_broker: Broker | None = None
_settings: JobSettings | None = None


def configure(broker: Broker, settings: JobSettings) -> None:
    global _broker, _settings
    _broker, _settings = broker, settings


def engine() -> JobEngine:
    """The process's engine, on a store from DATABASE_URL and the worker's broker."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                from evstore.core.store.postgres import PostgreSQLEventStore

                store = PostgreSQLEventStore.from_env()
                _engine = JobEngine(store, _broker, _settings)
    return _engine


def reset() -> None:
    """Close the store (worker shutdown, tests)."""
    global _engine
    with _lock:
        if _engine is not None:
            _engine.store.close()
            _engine = None
