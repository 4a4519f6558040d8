"""Replay handlers, registered by name, found again in every worker process.

    from evstore.workers import register_event_handler

    def count_signups(event, ctx):
        ctx.connection.execute(
            "INSERT INTO signups_per_day (day, n) VALUES (%s, 1) "
            "ON CONFLICT (day) DO UPDATE SET n = signups_per_day.n + 1",
            [event.created_at.date()],
        )

    register_event_handler("UserRegistered", count_signups)          # name: "count_signups"
    register_event_handler(["EmailChanged", "UserDeleted"], audit, name="audit")
    register_event_handler("*", noop)                                # every event type

A handler takes the event, and optionally a :class:`HandlerContext`. Do its
PostgreSQL effects through ``ctx.connection``: they commit in the batch's
transaction, together with the batch's outcome, so a batch delivered twice
never applies them twice. Effects outside PostgreSQL must be idempotent;
``ctx.idempotency_key(event)`` is stable across attempts and redeliveries.

Worker processes import the modules named in EVSTORE_HANDLER_MODULES (or
``evstore worker --handlers``) at start-up, and only those: a replay job
names its handlers, and a name no configured module registered fails the
batch (nothing named by a job row is imported; see :mod:`.registry`).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from evstore.core.errors import ConfigurationError, InvalidJobError
from evstore.core.store.persistence import EventRecord, EventStore

ALL_TYPES = "*"


@dataclass(frozen=True)
class HandlerContext:
    job_id: int
    batch_number: int
    attempt: int
    handler: str
    connection: psycopg.Connection
    store: EventStore

    @property
    def batch_id(self) -> str:
        return f"{self.job_id}:{self.batch_number}"

    def idempotency_key(self, event: EventRecord) -> str:
        """The same for every delivery of this event to this handler in this job."""
        return f"evstore-replay:{self.job_id}:{self.handler}:{event.event_id}"


@dataclass(frozen=True)
class RegisteredHandler:
    name: str
    func: Callable[..., Any]
    event_types: frozenset[str]
    module: str
    takes_context: bool
    is_async: bool

    def accepts(self, event_type: str) -> bool:
        return ALL_TYPES in self.event_types or event_type in self.event_types

    def __call__(self, event: EventRecord, ctx: HandlerContext) -> None:
        result = self.func(event, ctx) if self.takes_context else self.func(event)
        if self.is_async or inspect.isawaitable(result):
            _loop().run_until_complete(result)


_REGISTRY: dict[str, RegisteredHandler] = {}
_LOCK = threading.Lock()
_LOCAL = threading.local()


def _loop() -> asyncio.AbstractEventLoop:
    loop = getattr(_LOCAL, "loop", None)
    if loop is None:
        loop = _LOCAL.loop = asyncio.new_event_loop()
    return loop


def _takes_context(func: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def register_event_handler(
    event_type: str | Sequence[str], handler: Callable[..., Any] | None = None, *,
    name: str | None = None,
) -> Any:
    """Register ``handler`` for an event type (a list of them, or "*"); returns the handler.

    Without ``handler`` it is a decorator: ``@register_event_handler("UserRegistered")``.
    """
    if handler is None:
        return lambda func: register_event_handler(event_type, func, name=name)
    types = {event_type} if isinstance(event_type, str) else set(event_type)
    if not types or not all(isinstance(t, str) and t for t in types):
        raise ValueError("event_type must be an event type name, a list of them, or '*'")
    if not callable(handler):
        raise TypeError(f"handler must be callable (got {handler!r})")
    handler_name = name or getattr(handler, "__name__", None)
    if not handler_name or handler_name == "<lambda>":
        raise ValueError("give the handler a name: register_event_handler(type, func, name=...)")
    module = getattr(handler, "__module__", None) or "__main__"
    with _LOCK:
        existing = _REGISTRY.get(handler_name)
        if existing is not None:
            same = (existing.module == module and getattr(existing.func, "__qualname__", None)
                    == getattr(handler, "__qualname__", None))
            if not same:
                raise ConfigurationError(
                    f"a replay handler named {handler_name!r} is already registered "
                    f"(from {existing.module}); choose another name"
                )
            types |= existing.event_types
        _REGISTRY[handler_name] = RegisteredHandler(
            handler_name, handler, frozenset(types), module, _takes_context(handler),
            inspect.iscoroutinefunction(handler),
        )
    return handler


def unregister_event_handler(name: str) -> None:
    with _LOCK:
        _REGISTRY.pop(name, None)


def registered_handlers() -> dict[str, RegisteredHandler]:
    with _LOCK:
        return dict(_REGISTRY)


def load_handler_modules(modules: Iterable[str]) -> list[str]:
    """Import each configured module (registering its handlers); the ones imported."""
    from .registry import import_configured_modules

    return import_configured_modules(modules)


def resolve_handlers(names: Sequence[str] | None) -> list[RegisteredHandler]:
    """The registered handlers called ``names`` (all registered when None); imports nothing."""
    registry = registered_handlers()
    if names is not None and (isinstance(names, str) or not all(isinstance(n, str) for n in names)):
        raise InvalidJobError("handlers must be a list of handler names")
    wanted = [n for n in registry if n not in BUILTIN] if names is None else list(names)
    unknown = [n[:100] for n in wanted if n not in registry]
    if unknown:
        known = ", ".join(sorted(registry)) or "none registered"
        raise InvalidJobError(
            f"unknown replay handler(s): {', '.join(unknown)} (known: {known}; handlers are "
            "registered by the modules in EVSTORE_HANDLER_MODULES or --handlers)"
        )
    if not wanted:
        raise InvalidJobError("no replay handler is registered: name a module with --handlers "
                              "or EVSTORE_HANDLER_MODULES")
    return [registry[n] for n in wanted]


def noop(event: EventRecord) -> None:
    """Does nothing: for benchmarks and dry runs of the replay machinery."""


register_event_handler(ALL_TYPES, noop, name="noop")
BUILTIN = frozenset({"noop"})
