"""Background jobs on Dramatiq workers: the job engine and the replay job kind.

Producers::

    from evstore.workers import EventReplayService, ReplayConfig, make_broker
    service = EventReplayService(store, make_broker("redis://localhost:6379/0"))
    job_id = service.replay_events(ReplayConfig(event_types=["UserRegistered"],
                                                handler_names=["welcome_mail"]))

Workers: ``evstore worker`` (or ``dramatiq evstore.workers.actors:broker``).
Importing this package does not import Dramatiq; sending a message does.
"""

from __future__ import annotations

from typing import Any

from .handlers import HandlerContext, register_event_handler, registered_handlers

__all__ = [
    "BatchContext",
    "BatchFailure",
    "BatchOutcome",
    "EventReplayService",
    "HandlerContext",
    "JobEngine",
    "JobKind",
    "Plan",
    "ReplayConfig",
    "ReplayResult",
    "make_broker",
    "register_aggregate_class",
    "register_event_handler",
    "register_job_kind",
    "registered_handlers",
]

_LAZY = {
    "BatchContext": "kinds", "BatchFailure": "kinds", "BatchOutcome": "kinds", "JobKind": "kinds",
    "Plan": "kinds", "register_job_kind": "kinds", "JobEngine": "engine",
    "EventReplayService": "replay", "ReplayConfig": "replay", "ReplayResult": "replay",
    "make_broker": "broker", "register_aggregate_class": "registry",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
