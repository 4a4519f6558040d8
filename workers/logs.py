"""structlog for worker processes: JSON lines when not on a terminal, with the bound context.

Every line of a batch carries job_id, batch and attempt (bound by
:class:`~evstore.workers.middleware.JobLogContext` and the engine).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

_configured = False


def configure_logging(default_level: str = "INFO") -> None:
    """Configure structlog once per process, on stderr (level: EVSTORE_LOG_LEVEL or the default)."""
    global _configured
    if _configured or structlog.is_configured():  # the application's own setup wins
        return
    name = (os.environ.get("EVSTORE_LOG_LEVEL") or default_level).upper()
    numeric = logging.getLevelName(name)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    renderer = _renderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line (print() writes the text and the newline apart): lines of
        # a pool's processes sharing one stderr never run into each other.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _route_stdlib_logging(renderer, numeric)
    _configured = True


def _renderer() -> Any:
    """EVSTORE_LOG_FORMAT: json (production), console (a person); unset: JSON unless a terminal."""
    fmt = (os.environ.get("EVSTORE_LOG_FORMAT") or "").strip().lower()
    if fmt == "json" or (fmt != "console" and not sys.stderr.isatty()):
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False)


def _route_stdlib_logging(renderer: Any, level: int) -> None:
    """Lines of the standard library's loggers (core, uvicorn, dramatiq) in the same format."""
    root = logging.getLogger()
    if any(getattr(h, "evstore", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.evstore = True  # type: ignore[attr-defined]
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processor=renderer,
        foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.processors.add_log_level,
                           structlog.processors.TimeStamper(fmt="iso", utc=True)],
    ))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
