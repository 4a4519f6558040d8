"""The dispatcher's bound: a batch counts until it and every earlier batch were handled.

Real handler threads, no database: events are built by hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from evstore.core.reader.dispatch import Dispatcher
from evstore.core.store.persistence import EventRecord


def event(stream: str) -> EventRecord:
    return EventRecord(stream, "User", "Ev", {}, stream_id=stream)


def until(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def two_streams_on_two_threads() -> tuple[str, str]:
    """Two streams that the dispatcher routes to different threads (asked, not assumed)."""
    seen: dict[str, str] = {}
    d = Dispatcher(lambda e: seen.setdefault(e.stream_id or "", threading.current_thread().name),
                   concurrency=2, capacity=100)
    try:
        for i in range(64):
            d.submit(i, [event(f"S{i}")])
        assert d.wait_idle(10)
    finally:
        d.close()
    first = seen["S0"]
    return "S0", next(s for s, thread in seen.items() if thread != first)


def test_a_handled_batch_stays_counted_while_an_earlier_one_is_not_handled() -> None:
    slow, fast = two_streams_on_two_threads()
    gate = threading.Event()
    handled: list[str] = []

    def handler(e: EventRecord) -> None:
        if e.stream_id == slow:
            gate.wait()
        handled.append(e.stream_id or "")

    d = Dispatcher(handler, concurrency=2, capacity=3)
    try:
        # Given a first batch held on the slow thread, and a second one on the other
        d.submit(0, [event(slow)])
        d.submit(1, [event(fast), event(fast)])
        # When the second one is handled
        assert d.wait_capacity(3, 0) is False
        until(lambda: d.processed == 2, "the second batch to be handled")
        assert handled == [fast, fast] and d.take_done() == {1}
        # Then its events still count: no room for one more event, nothing drained
        assert d.in_flight == 3
        assert d.wait_capacity(1, 0) is False
        # And both leave the count together once the first is handled
        gate.set()
        assert d.wait_capacity(3, 10) is True
        assert d.in_flight == 0 and d.take_done() == {0}
        assert d.max_in_flight == 3
    finally:
        gate.set()
        d.close()


def test_batches_leave_the_count_in_order_however_they_complete() -> None:
    slow, fast = two_streams_on_two_threads()
    gates = {slow: threading.Event(), fast: threading.Event()}
    d = Dispatcher(lambda e: gates[e.stream_id or ""].wait(), concurrency=2, capacity=10)
    try:
        d.submit(0, [event(fast)])
        d.submit(1, [event(slow), event(slow)])
        d.submit(2, [event(fast)])
        assert d.in_flight == 4
        gates[fast].set()  # batches 0 and 2 are handled; 1 is not
        until(lambda: d.processed == 2, "batches 0 and 2 to be handled")
        assert d.in_flight == 3  # batch 0 left; 2 waits behind 1
        gates[slow].set()
        assert d.wait_idle(10)
        assert d.in_flight == 0 and d.take_done() == {0, 1, 2}
    finally:
        for g in gates.values():
            g.set()
        d.close()
