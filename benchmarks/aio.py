"""evstore.aio against the synchronous API: single appends and read_stream at 8 concurrent tasks.

    .venv/bin/python benchmarks/aio.py [--tasks 8] [--seconds 3] [--rounds 3]
                                       [--stream-events 20] [--json]

In a scratch database ``evstore_bench_<pid>`` (on the server of DATABASE_URL,
default postgresql://postgres@127.0.0.1:5432/postgres; dropped at the end),
each workload runs ``--seconds`` per round, the workloads taking turns in a
rotating order each round so background load falls on all alike:

- ``sync append`` / ``sync read_stream``: ``--tasks`` threads calling the
  synchronous store (the baseline);
- ``aio append`` / ``aio read_stream``: ``--tasks`` asyncio tasks awaiting
  evstore.aio, i.e. the same core in the facade's bounded thread pool;
- ``async-pool read_stream``: ``--tasks`` tasks on psycopg's
  AsyncConnectionPool running the store's own read_stream statement and
  ``decode_row`` (the other way to build the facade). There is no async-pool
  append: it would be a second implementation of the append path (advisory
  lock, version check, insert, checksums), which issue 14 rules out.

An append is one event to the task's own stream (expected version checked);
a read is ``read_stream`` of a ``--stream-events`` stream. Figures are median
calls per second; the ratio is against the synchronous API of the same kind,
measured in the same run. The aio rows also give the event loop's worst lag
(a 1 ms sleep probe) during the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evstore.core import EventRecord, PostgreSQLEventStore
from evstore.core.store.reads import COLUMNS
from psycopg.types.numeric import IntLoader

from benchmarks.scratch import DEFAULT_URL, XID8_OID, scratch_database
from benchmarks.timing import log
from evstore import aio


def event(stream: str, version: int) -> EventRecord:
    return EventRecord(stream, "User", "UserLoggedIn", {"ip": "192.0.2.1", "method": "password"},
                       aggregate_version=version)


def run_threads(tasks: int, seconds: float, make: Callable[[int], Callable[[], None]]) -> float:
    """Calls per second of ``tasks`` threads, each calling its function until the deadline."""
    counts = [0] * tasks
    calls = [make(i) for i in range(tasks)]
    barrier = threading.Barrier(tasks + 1)
    errors: list[BaseException] = []
    deadline = [0.0]

    def body(i: int) -> None:
        try:
            barrier.wait()
            while time.perf_counter() < deadline[0]:
                calls[i]()
                counts[i] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(tasks)]
    for t in threads:
        t.start()
    started = time.perf_counter()
    deadline[0] = started + seconds
    barrier.wait()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts) / (time.perf_counter() - started)


async def run_tasks(tasks: int, seconds: float,
                    make: Callable[[int], Callable[[], Awaitable[Any]]]) -> tuple[float, float]:
    """Calls per second of ``tasks`` asyncio tasks, and the loop's worst lag (ms) meanwhile."""
    counts = [0] * tasks
    calls = [make(i) for i in range(tasks)]
    worst = [0.0]
    stop = asyncio.Event()

    async def probe() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            worst[0] = max(worst[0], time.perf_counter() - t - 0.001)

    async def body(i: int, deadline: float) -> None:
        while time.perf_counter() < deadline:
            await calls[i]()
            counts[i] += 1

    probing = asyncio.create_task(probe())
    started = time.perf_counter()
    await asyncio.gather(*(body(i, started + seconds) for i in range(tasks)))
    elapsed = time.perf_counter() - started
    stop.set()
    await probing
    return sum(counts) / elapsed, worst[0] * 1000


class Bench:
    def __init__(self, url: str, tasks: int, stream_events: int) -> None:
        self.url = url
        self.tasks = tasks
        self.store = PostgreSQLEventStore(url)
        self.store.initialize_schema()
        self.aio = aio.PostgreSQLEventStore(self.store, max_workers=self.store.pool.max_size)
        self.read_id = "User-read"
        self.store.append_events(self.read_id, [event(self.read_id, v)
                                                for v in range(1, stream_events + 1)])
        self.stream_events = stream_events
        self.versions: dict[str, int] = {}
        self.round = 0
        self.read_sql = self.store.db.sql("store", "read_stream", columns=COLUMNS)

    def _appender(self, label: str, i: int) -> tuple[str, Callable[[], int]]:
        stream = f"{label}-{self.round}-{i}"
        self.versions[stream] = 0

        def next_version() -> int:
            self.versions[stream] += 1
            return self.versions[stream]

        return stream, next_version

    def sync_append(self, seconds: float) -> tuple[float, float | None]:
        def make(i: int) -> Callable[[], None]:
            stream, nxt = self._appender("sync", i)
            return lambda: self.store.append_events(stream, [event(stream, nxt())]) and None
        return run_threads(self.tasks, seconds, make), None

    def aio_append(self, seconds: float) -> tuple[float, float | None]:
        def make(i: int) -> Callable[[], Awaitable[Any]]:
            stream, nxt = self._appender("aio", i)
            return lambda: self.aio.append_events(stream, [event(stream, nxt())])
        return asyncio.run(run_tasks(self.tasks, seconds, make))

    def _check(self, events: list[EventRecord]) -> None:
        if len(events) != self.stream_events:
            raise AssertionError(f"read {len(events)} events, expected {self.stream_events}")

    def sync_read(self, seconds: float) -> tuple[float, float | None]:
        return run_threads(self.tasks, seconds,
                           lambda i: lambda: self._check(self.store.read_stream(self.read_id))), None

    def aio_read(self, seconds: float) -> tuple[float, float | None]:
        async def one() -> None:
            self._check(await self.aio.read_stream(self.read_id))
        return asyncio.run(run_tasks(self.tasks, seconds, lambda i: one))

    def async_pool_read(self, seconds: float) -> tuple[float, float | None]:
        from psycopg_pool import AsyncConnectionPool

        async def configure(conn: Any) -> None:
            conn.adapters.register_loader(XID8_OID, IntLoader)
            await conn.execute(self.store.db.sql("store", "set_utc"))

        async def main() -> tuple[float, float]:
            async with AsyncConnectionPool(self.url, min_size=self.tasks, max_size=self.tasks,
                                           kwargs={"autocommit": True}, configure=configure) as pool:
                async def one() -> None:
                    async with pool.connection() as conn:
                        cur = await conn.execute(self.read_sql, [self.read_id, 1, 1000, False])
                        rows = await cur.fetchall()
                    self._check([self.store.decode_row(r) for r in rows])
                await one()  # warm
                return await run_tasks(self.tasks, seconds, lambda i: one)
        return asyncio.run(main())

    def close(self) -> None:
        self.aio.calls.close()
        self.store.close()


WORKLOADS = {
    "sync append": ("append", Bench.sync_append),
    "aio append": ("append", Bench.aio_append),
    "sync read_stream": ("read", Bench.sync_read),
    "aio read_stream": ("read", Bench.aio_read),
    "async-pool read_stream": ("read", Bench.async_pool_read),
}
BASELINE = {"append": "sync append", "read": "sync read_stream"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=8)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--stream-events", type=int, default=20)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rates: dict[str, list[float]] = {name: [] for name in WORKLOADS}
    lags: dict[str, list[float]] = {name: [] for name in WORKLOADS}
    with scratch_database(os.environ.get("DATABASE_URL") or DEFAULT_URL) as url:
        bench = Bench(url, args.tasks, args.stream_events)
        try:
            names = list(WORKLOADS)
            for r in range(args.rounds):
                bench.round = r
                for name in names[r % len(names):] + names[:r % len(names)]:
                    rate, lag = WORKLOADS[name][1](bench, args.seconds)
                    rates[name].append(rate)
                    if lag is not None:
                        lags[name].append(lag)
                    log(f"round {r + 1}: {name}: {rate:,.0f} calls/s")
        finally:
            bench.close()
    rows = []
    for name, (kind, _) in WORKLOADS.items():
        median = statistics.median(rates[name])
        base = statistics.median(rates[BASELINE[kind]])
        rows.append({"workload": name, "median_calls_per_s": round(median, 1),
                     "runs": [round(x, 1) for x in rates[name]],
                     "ratio_to_sync": round(median / base, 3) if base else None,
                     "worst_loop_lag_ms": round(max(lags[name]), 1) if lags[name] else None})
    if args.json:
        print(json.dumps({"tasks": args.tasks, "seconds": args.seconds, "rounds": args.rounds,
                          "stream_events": args.stream_events, "rows": rows}, indent=2))
        return 0
    print(f"{args.tasks} concurrent tasks, {args.seconds:g} s x {args.rounds} rounds, "
          f"read_stream of {args.stream_events} events")
    print(f"{'workload':<24} {'median calls/s':>15} {'vs sync':>8} {'worst loop lag':>15}")
    for row in rows:
        lag = f"{row['worst_loop_lag_ms']:.1f} ms" if row["worst_loop_lag_ms"] is not None else "-"
        print(f"{row['workload']:<24} {row['median_calls_per_s']:>15,.0f} "
              f"{row['ratio_to_sync']:>7.0%} {lag:>15}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
