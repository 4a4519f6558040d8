"""structlog for worker processes: JSON lines when not on a terminal, with the bound context.

Every line of a batch carries job_id, batch and attempt (bound by
:class:`~evstore.workers.middleware.JobLogContext` and the engine).
"""

from __future__ import annotations

import logging
import os
import sys

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
    renderer = (structlog.dev.ConsoleRenderer(colors=False) if sys.stderr.isatty()
                else structlog.processors.JSONRenderer())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _configured = True
