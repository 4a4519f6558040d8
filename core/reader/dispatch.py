"""Handing events read by a stream reader to its handler threads, in bounded amounts.

Events of one stream always go to the same thread, in the order they were
read, so per-stream order holds with any number of threads. The reader may
only submit a batch when the events of the batches not yet handled *in
order* leave room for it (``capacity``): a batch stays counted until it and
every batch submitted before it were handled, even when its own threads are
done. That is the bound on what a kill repeats: the reader saves a checkpoint
only past such an in-order prefix, and saves the prefix completed so far
before it submits again, so the events handled but not saved are always
among the counted ones (at most ``capacity``). Counting by thread instead
let a lagging thread's peers handle later batches beyond the bound.
The threads themselves never wait for each other; only the reader waits. A
slow handler therefore slows the reader down instead of filling memory.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ..store.persistence import EventRecord

Handler = Callable[[EventRecord], object]
_RATE_WINDOW = 10.0


class _Handled(NamedTuple):
    """Events handled at one moment, for the rate over the last _RATE_WINDOW seconds."""

    at: float
    events: int


class _Counted(NamedTuple):
    """A submitted batch that still counts against the capacity."""

    id: int
    size: int


class Dispatcher:
    def __init__(self, handler: Handler, concurrency: int, capacity: int, name: str = "") -> None:
        self._handler = handler
        self._capacity = capacity
        self._cond = threading.Condition()
        self._queues: list[queue.SimpleQueue[tuple[int, list[EventRecord]] | None]] = [
            queue.SimpleQueue() for _ in range(concurrency)
        ]
        self._remaining: dict[int, int] = {}  # batch -> its sub-batches not yet handled
        self._order: deque[_Counted] = deque()  # counted batches, in submission order
        self._done: set[int] = set()
        self._outstanding = 0  # sub-batches queued or running
        self.in_flight = 0  # events of the batches not yet handled in order (counted)
        self.max_in_flight = 0
        self.submitted = 0  # events handed over so far
        self.blocked = False
        self.processed = 0
        self.error: BaseException | None = None
        self.failed_event: EventRecord | None = None
        self._window: deque[_Handled] = deque()
        self._threads = [
            threading.Thread(target=self._work, args=(q,), name=f"evstore-handler-{name}-{i}",
                             daemon=True)
            for i, q in enumerate(self._queues)
        ]
        for t in self._threads:
            t.start()

    # -- reader side ----------------------------------------------------------

    def wait_capacity(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` more events fit; False on time-out or after a failure."""
        with self._cond:
            self.blocked = True  # the reader waits for the handlers (backpressure)
            self._cond.wait_for(
                lambda: self.error is not None
                or self.in_flight == 0
                or self.in_flight + count <= self._capacity,
                timeout,
            )
            self.blocked = False
            return self.error is None and (
                self.in_flight == 0 or self.in_flight + count <= self._capacity
            )

    def submit(self, batch_id: int, events: Sequence[EventRecord]) -> None:
        """Queue a batch; it completes when each of its events was handled."""
        lanes: dict[int, list[EventRecord]] = {}
        n = len(self._queues)
        for event in events:
            lane = 0 if n == 1 else hash(event.stream_id) % n
            lanes.setdefault(lane, []).append(event)
        with self._cond:
            if not lanes:
                self._done.add(batch_id)
                self._cond.notify_all()
                return
            self._remaining[batch_id] = len(lanes)
            self._order.append(_Counted(batch_id, len(events)))
            self._outstanding += len(lanes)
            self.in_flight += len(events)
            self.submitted += len(events)
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        for lane, part in lanes.items():
            self._queues[lane].put((batch_id, part))

    def take_done(self) -> set[int]:
        """The batches completed since the last call."""
        with self._cond:
            done, self._done = self._done, set()
            return done

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._outstanding == 0, timeout)

    def rate(self) -> float:
        now = time.monotonic()
        with self._cond:
            while self._window and self._window[0].at < now - _RATE_WINDOW:
                self._window.popleft()
            if not self._window:
                return 0.0
            span = max(now - self._window[0].at, 1.0)
            return sum(h.events for h in self._window) / span

    def close(self) -> None:
        """Stop the threads once they have finished what is queued."""
        for q in self._queues:
            q.put(None)
        for t in self._threads:
            t.join()

    # -- handler threads --------------------------------------------------------

    def _work(self, q: queue.SimpleQueue[tuple[int, list[EventRecord]] | None]) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            batch_id, events = item
            handled = 0
            completed = True
            for event in events:
                if self.error is not None:
                    completed = False
                    break
                try:
                    self._handler(event)
                except BaseException as exc:
                    with self._cond:
                        if self.error is None:
                            self.error = exc
                            self.failed_event = event
                    completed = False
                    break
                handled += 1
            self._finish(batch_id, handled, completed)

    def _finish(self, batch_id: int, handled: int, completed: bool) -> None:
        with self._cond:
            self.processed += handled
            self._outstanding -= 1
            if handled:
                self._window.append(_Handled(time.monotonic(), handled))
            if completed:
                left = self._remaining[batch_id] - 1
                if left:
                    self._remaining[batch_id] = left
                else:
                    del self._remaining[batch_id]
                    self._done.add(batch_id)
                    self._uncount()
            self._cond.notify_all()

    def _uncount(self) -> None:
        """Stop counting the batches now handled together with every earlier one."""
        while self._order and self._order[0].id not in self._remaining:
            self.in_flight -= self._order.popleft().size
