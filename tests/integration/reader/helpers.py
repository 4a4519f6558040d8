"""Shared helpers of the reader tests: appending, waiting on conditions, collecting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from evstore import EventRecord

DEADLINE = 30.0


def ev(aggregate_id: str, n: int, event_type: str = "Ev", aggregate_type: str = "User") -> EventRecord:
    return EventRecord(aggregate_id, aggregate_type, event_type, {"n": n})


def append(store: Any, stream: str, count: int, event_type: str = "Ev",
           aggregate_type: str = "User") -> None:
    """Append ``count`` events to ``stream`` (aggregate id = stream id), one append each."""
    for i in range(count):
        store.append_events(stream, [ev(stream, i, event_type, aggregate_type)])


def append_many(store: Any, streams: list[str], per_stream: int, chunk: int = 1) -> int:
    """Round-robin appends over streams; the number of events appended."""
    total = 0
    for i in range(0, per_stream, chunk):
        for s in streams:
            size = min(chunk, per_stream - i)
            store.append_events(s, [ev(s, i + k) for k in range(size)])
            total += size
    return total


def wait_for(cond: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Wait until ``cond()`` is truthy (checked every 10 ms); fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Collector:
    """A thread-safe handler that records what it was given."""

    def __init__(self, on_event: Callable[[EventRecord], None] | None = None) -> None:
        self.events: list[EventRecord] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()
        self._on_event = on_event

    def __call__(self, event: EventRecord) -> None:
        if self._on_event is not None:
            self._on_event(event)
        with self._lock:
            self.events.append(event)
            self.threads.add(threading.current_thread().name)

    def __len__(self) -> int:
        with self._lock:
            return len(self.events)

    def by_stream(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        with self._lock:
            for e in self.events:
                out.setdefault(e.stream_id or "", []).append(e.stream_position or 0)
        return out


def all_events(store: Any, count: int) -> list[EventRecord]:
    """The global order once ``count`` events show in it.

    read_all only shows rows of transactions older than every one still running
    in the cluster (other tests' included): wait for the horizon to pass them.
    """
    return list(wait_for(lambda: (evs := list(store.iter_all())) and len(evs) == count and evs,
                         f"{count} events to show in read_all"))
