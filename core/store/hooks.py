"""Observers of what the store's reads return: where the access log and consent plug in.

The store cannot import a feature package, so a feature (core/privacy's
access log) registers a *factory* here; the store builds its observer on its
first read and hands every read's result to it:

- ``observed(access_type, events, detail)`` sees the events a call returns and
  returns them (consent may redact some); the access log records one entry.
- ``observe_iter(access_type, events, detail)`` does the same for an iterator
  (a replay batch): events pass one by one, one entry when it ends.
- ``access_scope(store, access_type)`` (a context) makes the reads inside one
  access, logged once when it ends (an aggregate load, an export);
- ``unobserved()`` (a context) turns observation off for reads that a caller
  logs itself at a finer grain (a reader delivers only part of a page).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

# (Records and stores are typed Any here: this module imports nothing of the
# store, so persistence.py and postgres.py may import it.)
EventRecord = Any
EventStore = Any


@dataclass(frozen=True)
class AccessContext:
    """Who reads, why, and from where: what the access log records of each read.

    Unset fields fall back to the settings (EVSTORE_ACCESSOR,
    EVSTORE_ACCESS_PURPOSE), then to the process's user and host.
    """

    accessor: str | None = None
    purpose: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None


_context: ContextVar[AccessContext | None] = ContextVar("evstore_access_context", default=None)
_EMPTY = AccessContext()


def current_access() -> AccessContext:
    """The access context of this thread / task (set by :func:`access_context`)."""
    return _context.get() or _EMPTY


@contextmanager
def access_context(
    accessor: str | None = None, purpose: str | None = None, ip_address: str | None = None,
    user_agent: str | None = None, *, context: AccessContext | None = None,
) -> Iterator[AccessContext]:
    """Declare who reads and why for the reads inside (this thread or task only).

    Given fields replace the enclosing context's; ``context`` enters a captured
    one whole (a reader re-enters its creator's context in its own thread).
    """
    base = context if context is not None else current_access()
    given = {k: v for k, v in (("accessor", accessor), ("purpose", purpose),
                                ("ip_address", ip_address), ("user_agent", user_agent))
             if v is not None}
    token = _context.set(replace(base, **given))
    try:
        yield current_access()
    finally:
        _context.reset(token)


class ReadObserver(Protocol):
    def observed(self, access_type: str, events: list[EventRecord],
                 detail: dict[str, Any]) -> list[EventRecord]: ...

    def observe_iter(self, access_type: str, events: Iterator[EventRecord],
                     detail: dict[str, Any]) -> Iterator[EventRecord]: ...

    def open_scope(self, access_type: str, detail: dict[str, Any]) -> Any: ...

    def close_scope(self, scope: Any) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


ObserverFactory = Callable[[Any], "ReadObserver | None"]
_factories: list[ObserverFactory] = []
_lock = threading.Lock()
_unobserved: ContextVar[bool] = ContextVar("evstore_reads_unobserved", default=False)
_NONE = object()


def register_observer_factory(factory: ObserverFactory) -> None:
    with _lock:
        if factory not in _factories:
            _factories.append(factory)


def observer_of(store: EventStore) -> ReadObserver | None:
    """The store's observer (built on first use; None when no feature observes reads)."""
    found = store.__dict__.get("_evstore_read_observer", _NONE)
    if found is _NONE:
        with _lock:
            found = store.__dict__.get("_evstore_read_observer", _NONE)
            if found is _NONE:
                found = None
                for factory in _factories:
                    found = factory(store)
                    if found is not None:
                        break
                store.__dict__["_evstore_read_observer"] = found
    return cast("ReadObserver | None", found)


_scope: ContextVar[Any] = ContextVar("evstore_access_scope", default=None)


def current_scope() -> Any:
    """The open :func:`access_scope` of this thread / task, if any."""
    return _scope.get()


@contextmanager
def access_scope(store: EventStore, access_type: str, **detail: Any) -> Iterator[Any]:
    """One access made of several reads (an aggregate load, an export): the reads inside
    add what they return to it, and it is logged once, when it ends. Nested: the outer one."""
    observer = None if _unobserved.get() or _scope.get() is not None else observer_of(store)
    if observer is None:
        yield _scope.get()
        return
    scope = observer.open_scope(access_type, detail)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)
        observer.close_scope(scope)


def note(**detail: Any) -> None:
    """Add details to the open access scope's entry (e.g. the snapshot version a load used)."""
    scope = _scope.get()
    if scope is not None:
        scope.detail.update(detail)


def observe(store: EventStore, access_type: str, events: list[EventRecord],
            **detail: Any) -> list[EventRecord]:
    if _unobserved.get() or not events:
        return events
    observer = observer_of(store)
    return events if observer is None else observer.observed(access_type, events, detail)


def observe_iter(store: EventStore, access_type: str, events: Iterator[EventRecord],
                 **detail: Any) -> Iterator[EventRecord]:
    if _unobserved.get():
        return events
    observer = observer_of(store)
    return events if observer is None else observer.observe_iter(access_type, events, detail)


@contextmanager
def unobserved() -> Iterator[None]:
    token = _unobserved.set(True)
    try:
        yield
    finally:
        _unobserved.reset(token)


def close_observer(store: EventStore) -> None:
    """Flush and stop the store's observer, if it has one (the store's ``close``)."""
    found = store.__dict__.pop("_evstore_read_observer", None)
    if found is not None:
        found.close()
