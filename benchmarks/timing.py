"""Measuring: repeated runs, medians, and a pool of writer threads on a deadline."""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Measure:
    """Rates (events/s) of several runs of one workload."""

    label: str
    rates: list[float] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    # Client CPU (this process, all threads) per event, in microseconds.
    cpu_us: list[float] = field(default_factory=list)

    def add(self, clocked: Clocked) -> float:
        rate = clocked.events / clocked.seconds if clocked.seconds > 0 else 0.0
        self.rates.append(rate)
        self.events.append(clocked.events)
        self.seconds.append(clocked.seconds)
        self.cpu_us.append(clocked.cpu / clocked.events * 1e6 if clocked.events else 0.0)
        return rate

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    @property
    def median_cpu_us(self) -> float:
        return statistics.median(self.cpu_us) if self.cpu_us else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "median_events_per_s": round(self.median, 1),
            "runs_events_per_s": [round(r, 1) for r in self.rates],
            "runs_events": self.events,
            "runs_seconds": [round(s, 3) for s in self.seconds],
            "median_client_cpu_us_per_event": round(self.median_cpu_us, 1),
        }


@dataclass(frozen=True)
class Clocked:
    """What one timed run did: events, wall-clock seconds, client CPU seconds."""

    events: int
    seconds: float
    cpu: float


class Clock:
    """Wall clock and this process's CPU time, started together."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def stop(self, events: int) -> Clocked:
        return Clocked(events, time.perf_counter() - self.wall, time.process_time() - self.cpu)


def total(parts: list[Clocked]) -> Clocked:
    """Several timed slices of one workload as one run."""
    return Clocked(sum(p.events for p in parts), sum(p.seconds for p in parts),
                   sum(p.cpu for p in parts))


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the table (or the JSON)."""
    print(message, file=sys.stderr, flush=True)


# A writer: called once per thread with its index; returns the function that
# performs one append (and returns how many events it wrote), plus a cleanup.
Writer = Callable[[int], tuple[Callable[[], int], Callable[[], None]]]


class Writers:
    """``threads`` writers whose set-up (connections, stream ids) outlives one run.

    Several short runs of different workloads can then take turns (the
    figures interleave them so background load hits every side alike), each
    writer keeping its connection and its streams' versions between runs.
    """

    def __init__(self, threads: int, make_writer: Writer) -> None:
        self.writers: list[tuple[Callable[[], int], Callable[[], None]]] = []
        try:
            for i in range(threads):
                self.writers.append(make_writer(i))
        except BaseException:
            self.close()
            raise

    def run(self, seconds: float) -> Clocked:
        """Every writer appends until the deadline: events written, elapsed time, CPU.

        The threads start at a barrier and stop after their current append
        once the deadline passed; the elapsed time runs until the last one
        finished.
        """
        threads = len(self.writers)
        counts = [0] * threads
        ends = [0.0] * threads
        errors: list[BaseException] = []
        stop = threading.Event()
        barrier = threading.Barrier(threads + 1)

        def body(index: int) -> None:
            append = self.writers[index][0]
            try:
                barrier.wait()
                n = 0
                while not stop.is_set():
                    n += append()
                counts[index] = n
                ends[index] = time.perf_counter()
            except BaseException as exc:
                errors.append(exc)
                stop.set()
                barrier.abort()

        pool = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(threads)]
        for t in pool:
            t.start()
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        clock = Clock()
        stop.wait(seconds)
        stop.set()
        for t in pool:
            t.join()
        if errors:
            raise errors[0]
        done = clock.stop(sum(counts))
        return Clocked(done.events, max(ends) - clock.wall, done.cpu)

    def close(self) -> None:
        for _, cleanup in self.writers:
            cleanup()


def run_writers(threads: int, make_writer: Writer, seconds: float) -> Clocked:
    """Set up ``threads`` writers, run them for ``seconds``, clean up."""
    writers = Writers(threads, make_writer)
    try:
        return writers.run(seconds)
    finally:
        writers.close()
