"""What the store's reads return, seen by the access log and consent (core/store/hooks.py).

Granularity: **one entry per access**, an access being one call of the API
that returned personal data: ``read_stream``, ``get_events_for_aggregate``,
``read_all`` (one page), a reader's or consumer group's delivered page, a
replay batch, a snapshot load, an export; an iterator (``iter_stream``,
``iter_all``) writes one entry when it ends, or every
:data:`ITER_ENTRY_EVENTS` personal events of a long one. The entry lists the
personal events returned (by the declarations of core/privacy/declarations.py)
and their subjects; a call that returned no personal data writes nothing.

Entries are buffered and written by a background thread in batches (one
transaction each) at most ``EVSTORE_ACCESS_LOG_FLUSH_MS`` (200 ms) after the
read (core/privacy/access_writer.py); unless consent must redact the call's
events, which of them are personal is worked out by that thread too, off the
read's path; closing the store or leaving the interpreter writes the rest. A crash
(SIGKILL, power loss) loses the entries of at most that last interval. With
``EVSTORE_ACCESS_LOG_FLUSH_MS=0`` each read writes its entry before returning.
A purpose declared in the access context also applies consent: the declared
fields of a subject who withdrew consent for that purpose come back redacted.
"""

from __future__ import annotations

import functools
import getpass
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..store import hooks
from . import consent
from .access_log import AccessEntry
from .access_writer import BufferedWriter
from .declarations import (
    PersonalData,
    PrivacyRegistry,
    default_registry,
    file_declarations,
    parse_path,
    values_at,
)

if TYPE_CHECKING:
    from ..store.persistence import EventRecord, EventStore

ITER_ENTRY_EVENTS = 10_000  # an iterator writes an entry at least every this many personal events


def default_accessor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = "uid-unknown"
    return f"{user}@{socket.gethostname()}"


def _keys(steps: tuple[tuple[str, bool], ...]) -> tuple[str, ...] | None:
    """The keys of a path without lists (walked with dict.get), None when it has a list."""
    return None if any(is_list for _, is_list in steps) else tuple(name for name, _ in steps)


def _at(doc: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if type(doc) is not dict:
            return None
        doc = doc.get(key)
    return doc


class _Compiled:
    """A declaration with its paths parsed once (plain paths walked without generators)."""

    __slots__ = ("data_keys", "fields", "pd", "subject_keys", "subject_root", "user_id_subject")

    def __init__(self, pd: PersonalData) -> None:
        self.pd = pd
        root, steps = parse_path(pd.subject)
        self.subject_root, self.subject_keys = root, tuple(name for name, _ in steps)
        self.user_id_subject = (root, self.subject_keys) == ("metadata", ("user_id",))
        self.fields = [(root, _keys(steps), steps) for root, steps in
                       (parse_path(f) for f in pd.fields)]
        # Every field a top-level key of the data ("data.email"): checked with dict.get alone.
        flat = all(root == "data" and keys is not None and len(keys) == 1
                   for root, keys, _ in self.fields)
        self.data_keys = tuple(keys[0] for _, keys, _ in self.fields if keys) if flat else None

    def present(self, event: EventRecord) -> bool:
        data, meta = event.event_data, None
        if self.data_keys is not None and type(data) is dict:
            get = data.get
            return any(get(key) is not None for key in self.data_keys)
        for root, keys, steps in self.fields:
            if root == "metadata":
                meta = meta if meta is not None else event.metadata.to_dict()
                doc = meta
            else:
                doc = data
            if keys is not None:
                if _at(doc, keys) is not None:
                    return True
            elif any(v is not None for v in values_at(doc, steps)):
                return True
        return False

    def subject(self, event: EventRecord) -> str | None:
        if self.user_id_subject:
            value: Any = event.metadata.user_id
        elif self.subject_root == "aggregate_id":
            value = event.aggregate_id
        else:
            doc = event.event_data if self.subject_root == "data" else event.metadata.to_dict()
            value = _at(doc, self.subject_keys)
        if value is None or isinstance(value, dict | list) or value == "":
            return None
        return str(value)


class Declarations:
    """The registry of the settings (code + configuration file), with parsed paths, kept fresh:
    rebuilt when the code declarations change, and re-read from the file every cache_ttl."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._code: tuple[PersonalData, ...] | None = None
        self._generation = -1  # default_registry.generation when _code was taken
        self._file: list[PersonalData] = []
        self._file_at = 0.0
        self.registry = PrivacyRegistry()
        self.types: frozenset[str] = frozenset()  # the declared event types
        self._compiled: dict[tuple[str, int], _Compiled | None] = {}

    def refresh(self) -> None:
        now = time.monotonic()
        if default_registry.generation == self._generation and now - self._file_at < self._ttl:
            return  # (every read calls this: no copy of the declarations unless one changed)
        generation = default_registry.generation
        code = tuple(default_registry.declarations())
        if code == self._code and now - self._file_at < self._ttl:
            self._generation = generation
            return
        with self._lock:
            if now - self._file_at >= self._ttl or self._code is None:
                self._file, self._file_at = file_declarations(), now
            self.registry = PrivacyRegistry([*code, *self._file])
            self.types = frozenset(self.registry.event_types())
            self._compiled = {}
            self._code = code
            self._generation = generation

    def of(self, event: EventRecord) -> _Compiled | None:
        key = (event.event_type, event.event_version)
        try:
            found = self._compiled[key]
        except KeyError:
            pd = self.registry.for_event_type(*key)
            found = self._compiled[key] = _Compiled(pd) if pd is not None else None
        if found is None or (found.pd.aggregate_type is not None
                             and found.pd.aggregate_type != event.aggregate_type):
            return None
        return found


class Access:
    """What one access returned so far: personal event ids, their subjects and aggregates."""

    def __init__(self, access_type: str, ctx: hooks.AccessContext, detail: dict[str, Any]) -> None:
        self.access_type = access_type
        self.ctx = ctx
        self.detail = dict(detail)
        self.ids: list[Any] = []
        self.subjects: set[str] = set()
        self.aggregates: set[str] = set()
        self.returned = 0
        self.at = datetime.now(UTC)  # when the access happened, not when it is written
        self.personal_state = False  # a snapshot's state of a declared aggregate type

    def see(self, decl: Declarations, event: EventRecord) -> tuple[_Compiled, str] | None:
        """Count ``event``; its declaration and subject when it is personal and has one."""
        self.returned += 1
        found = decl.of(event)
        if found is None or not found.present(event):
            return None
        self.ids.append(event.event_id)
        self.aggregates.add(event.aggregate_id)
        subject = found.subject(event)
        if subject is None:
            return None
        self.subjects.add(subject)
        return found, subject

    def entry(self) -> AccessEntry:
        ctx = self.ctx
        return AccessEntry(
            access_type=self.access_type, accessor=ctx.accessor or "", purpose=ctx.purpose,
            ip_address=ctx.ip_address, user_agent=ctx.user_agent,
            subject_ids=tuple(sorted(self.subjects)), event_ids=tuple(self.ids),
            aggregate_id=next(iter(self.aggregates)) if len(self.aggregates) == 1 else None,
            details={k: v for k, v in {**self.detail, "returned": self.returned}.items()
                     if v is not None},
            accessed_at=self.at,
        )

    def reset(self) -> None:
        self.ids = []
        self.subjects.clear()
        self.aggregates.clear()
        self.returned = 0
        self.at = datetime.now(UTC)


class AccessObserver:
    """The store's read observer: logs personal data returned, applies withdrawn consent."""

    def __init__(self, store: EventStore) -> None:
        self.store = store
        settings = store.settings
        self.declarations = Declarations(float(settings.cache_ttl))
        self.writer = BufferedWriter(store, settings.access_log_flush_ms / 1000)
        self._default_accessor: str | None = None

    def context(self) -> hooks.AccessContext:
        ctx = hooks.current_access()
        settings = self.store.settings
        accessor = ctx.accessor or settings.accessor
        if accessor is None:
            accessor = self._default_accessor = self._default_accessor or default_accessor()
        purpose = ctx.purpose or settings.access_purpose
        return hooks.AccessContext(accessor, purpose, ctx.ip_address, ctx.user_agent)

    def _write(self, access: Access) -> None:
        if (access.ids or access.personal_state) and self.store.settings.access_log:
            self.writer.add(access.entry())

    def _analysed(self, access: Access, events: list[EventRecord]) -> AccessEntry | None:
        """The entry of a call's events (None when none is personal): run by the writer."""
        decl = self.declarations
        decl.refresh()
        of, ids, aggregates, subjects = decl.of, access.ids, access.aggregates, access.subjects
        for event in events:  # Access.see, inlined: this loop runs for every event read
            found = of(event)
            if found is None or not found.present(event):
                continue
            ids.append(event.event_id)
            aggregates.add(event.aggregate_id)
            subject = found.subject(event)
            if subject is not None:
                subjects.add(subject)
        access.returned += len(events)
        return access.entry() if ids else None

    def observed(self, access_type: str, events: list[EventRecord],
                 detail: dict[str, Any]) -> list[EventRecord]:
        self.declarations.refresh()
        types = self.declarations.types
        if not any(event.event_type in types for event in events):
            return events  # no event of a declared type: no personal data, nothing to do
        scope = hooks.current_scope()
        if not isinstance(scope, Access):
            ctx = self.context()
            if ctx.purpose is None or not consent.withdrawn(self.store, ctx.purpose):
                # Nothing to redact: which events are personal is worked out off the read's
                # path, by the writer (or here, when entries are written before returning).
                if self.store.settings.access_log:
                    access = Access(access_type, ctx, detail)
                    if self.writer.interval > 0:
                        self.writer.add(functools.partial(self._analysed, access, events))
                    else:
                        entry = self._analysed(access, events)
                        if entry is not None:
                            self.writer.add(entry)
                return events
        decl = self.declarations
        decl.refresh()
        access = scope if isinstance(scope, Access) else Access(access_type, self.context(), detail)
        redact: dict[int, tuple[_Compiled, str]] = {}
        for i, event in enumerate(events):
            found = access.see(decl, event)
            if found is not None:
                redact[i] = found
        if access.ctx.purpose is not None and redact:
            events = consent.apply(self.store, access.ctx.purpose, events, redact)
        if access is not scope:
            self._write(access)
        return events

    def observe_iter(self, access_type: str, events: Iterator[EventRecord],
                     detail: dict[str, Any]) -> Iterator[EventRecord]:
        """Events pass one by one (redacted as consent says); one entry when it ends."""
        scope = hooks.current_scope()
        access = scope if isinstance(scope, Access) else Access(access_type, self.context(), detail)
        return self._iterate(events, access, access is not scope)

    def _iterate(self, events: Iterator[EventRecord], access: Access,
                 own: bool) -> Iterator[EventRecord]:
        decl = self.declarations
        decl.refresh()
        purpose = access.ctx.purpose
        try:
            for event in events:
                found = access.see(decl, event)
                if found is not None and purpose is not None:
                    event = consent.apply(self.store, purpose, [event], {0: found})[0]
                if own and len(access.ids) >= ITER_ENTRY_EVENTS:
                    self._write(access)
                    access.reset()
                yield event
        finally:
            if own:
                self._write(access)

    def open_scope(self, access_type: str, detail: dict[str, Any]) -> Access:
        return Access(access_type, self.context(), detail)

    def close_scope(self, scope: Access) -> None:
        if scope.detail.get("snapshot_version") and not scope.ids:
            # State restored from a snapshot and no personal event after it: personal
            # when the aggregate's type has declarations (its state may hold their fields).
            atype, aggregate_id = scope.detail.get("aggregate_type"), scope.detail.get("aggregate_id")
            self.declarations.refresh()
            found = [pd for pd in self.declarations.registry.declarations()
                     if pd.aggregate_type is not None and pd.aggregate_type == atype]
            if found:
                scope.personal_state = True
                scope.aggregates.add(str(aggregate_id))
                if any(pd.subject == "aggregate_id" for pd in found):
                    scope.subjects.add(str(aggregate_id))
        self._write(scope)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _factory(store: EventStore) -> AccessObserver | None:
    return AccessObserver(store)


hooks.register_observer_factory(_factory)


def observer(store: EventStore) -> AccessObserver:
    """The store's observer (for features that log an access themselves: export, snapshots)."""
    found = hooks.observer_of(store)
    if not isinstance(found, AccessObserver):
        raise RuntimeError("the access log is not installed on this store")
    return found
