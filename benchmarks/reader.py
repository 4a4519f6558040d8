"""Catch-up throughput of EventStreamReader against read_all, and what live reading costs.

    .venv/bin/python benchmarks/reader.py [--events N] [--streams S] [--batch-size B]
                                          [--repeat R] [--seconds T] [--handler-ms H]
                                          [--json]

In a scratch database ``evstore_bench_<pid>`` (on the server of DATABASE_URL,
default postgresql://postgres@127.0.0.1:5432/postgres; dropped at the end),
N events of the identity workload are loaded into S streams, then, in turns,
R times each:

- ``read_all``: ``iter_all`` pages of B events through every event (decoded
  and checksum-verified), the baseline;
- ``reader``: an EventStreamReader in CATCH_UP mode with a new checkpoint
  name and a no-op handler, from start until it has handled N events (the
  same pages, plus the bounded queue, the handler thread and a checkpoint
  saved per page);
- ``reader x4``: the same with 4 handler threads (per-stream order kept);
  with ``--handler-ms H`` every handler call sleeps H ms (a handler that waits
  on I/O, where threads pay off: 4 threads should come close to 4 times one);
- ``group x2``: two members of one consumer group (threads of this process),
  until both together have handled N events (each reads every page and keeps
  its partitions' events).

Then two figures on live reading:

- notification latency: with a live reader waiting (poll interval 30 s, so
  only NOTIFY wakes it), the median time from an append's return to the
  handler's call, over 50 appends;
- the cost of NOTIFY to writers: 4 threads appending one event per append
  for T seconds, with no live reader registered, then with one registered
  (the trigger then notifies on every insert, and PostgreSQL serialises
  notifying commits).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evstore.core import PostgreSQLEventStore
from evstore.core.reader.reader import EventStreamReader
from evstore.core.reader.streams import StreamConfig, StreamReadMode

from benchmarks.scratch import DEFAULT_URL, scratch_database
from benchmarks.timing import log, run_writers
from benchmarks.workload import record, specs


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=100_000, help="events to load (default 100,000)")
    p.add_argument("--streams", type=int, default=2_000, help="streams (default 2,000)")
    p.add_argument("--batch-size", type=int, default=1_000, help="page size (default 1,000)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each; medians (default 3)")
    p.add_argument("--seconds", type=float, default=5.0, help="append run length (default 5)")
    p.add_argument("--handler-ms", type=float, default=0.0,
                   help="milliseconds each handler call sleeps (default 0: a no-op handler)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p.parse_args(argv)


def load(store: PostgreSQLEventStore, total: int, streams: int) -> None:
    per = max(total // streams, 1)
    chunk = 50
    done = 0
    for first in range(0, per, chunk):
        for s in range(streams):
            n = min(chunk, per - first)
            store.append_events(f"User-{s}", [
                record(sp, str(s), first + i + 1)
                for i, sp in enumerate(specs(s * per + first, n))])
            done += n
        if first % 500 == 0 or first + chunk >= per:
            log(f"  loaded {done:,} events")


def wait_settled(store: PostgreSQLEventStore, total: int) -> None:
    """Until read_all shows every event (no older transaction holds the horizon back)."""
    while sum(1 for _ in store.iter_all(batch_size=10_000)) < total:
        time.sleep(0.1)


def time_read_all(store: PostgreSQLEventStore, batch: int) -> tuple[int, float]:
    began = time.perf_counter()
    n = sum(1 for _ in store.iter_all(batch_size=batch))
    return n, time.perf_counter() - began


def time_readers(
    store: PostgreSQLEventStore, total: int, configs: list[StreamConfig], sleep: float = 0.0
) -> float:
    """Seconds until the readers together handled ``total`` events (each call sleeping)."""
    handled = [0] * len(configs)
    lock = threading.Lock()
    readers = [EventStreamReader(store, cfg) for cfg in configs]
    began = time.perf_counter()
    for i, reader in enumerate(readers):
        def count(event: Any, i: int = i) -> None:
            if sleep:
                time.sleep(sleep)
            with lock:  # several handler threads count
                handled[i] += 1
        reader.start(count)
    while sum(handled) < total:  # (metrics() would measure the lag in SQL: too costly here)
        time.sleep(0.002)
    elapsed = time.perf_counter() - began
    for reader in readers:
        reader.stop()
    for reader in readers:
        reader.join(timeout=60)
    return elapsed


def notify_latency(store: PostgreSQLEventStore, samples: int = 50) -> list[float]:
    got = threading.Event()
    cfg = StreamConfig(f"latency-{uuid.uuid4().hex[:6]}", mode=StreamReadMode.STREAMING,
                       poll_interval=30.0)
    out = []
    with EventStreamReader(store, cfg) as reader:
        reader.start(lambda e: got.set())
        while not reader.running.is_set():
            time.sleep(0.01)
        time.sleep(0.2)
        for i in range(samples):
            got.clear()
            store.append_events(f"Latency-{i}", [record(specs(i, 1)[0], f"L{i}", 1)])
            returned = time.perf_counter()
            if not got.wait(10):
                raise RuntimeError("the live reader was not woken within 10 s")
            out.append((time.perf_counter() - returned) * 1000)
    return out


def append_rate(store: PostgreSQLEventStore, seconds: float, tag: str) -> float:
    def writer(index: int) -> Any:
        n = [0]

        def one() -> int:
            n[0] += 1
            store.append_events(f"W{tag}-{index}-{n[0]}", [record(specs(n[0], 1)[0], "w", 1)])
            return 1
        return one, lambda: None

    clocked = run_writers(4, writer, seconds)
    return clocked.events / clocked.seconds


def set_listener(store: PostgreSQLEventStore, on: bool) -> None:
    """Register (or remove) a live listening member, as a waiting reader would."""
    with store.connection() as conn:
        if on:
            conn.execute(f"INSERT INTO {store.table('consumer_members')} (checkpoint_name, "
                         "consumer_group, member_id, host, identity, pid, listening, expires_at) "
                         "VALUES ('bench', '', 'bench', 'bench', 'bench', 0, true, "
                         "now() + interval '1 hour')")
        else:
            conn.execute(f"DELETE FROM {store.table('consumer_members')} "
                         "WHERE member_id = 'bench'")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    with scratch_database(url) as db, PostgreSQLEventStore(db) as store:
        store.initialize_schema()
        log(f"loading {args.events:,} events into {args.streams:,} streams")
        load(store, args.events, args.streams)
        total = sum(1 for _ in store.iter_all(batch_size=10_000))
        wait_settled(store, total)
        b = args.batch_size
        runs: dict[str, list[float]] = {"read_all": [], "reader": [], "reader x4": [],
                                        "group x2": []}
        mode = StreamReadMode.CATCH_UP

        def measure(label: str, name: str) -> float:
            if label == "read_all":
                n, secs = time_read_all(store, b)
                return n / secs
            if label == "reader":
                cfgs = [StreamConfig(f"r1-{name}", mode=mode, batch_size=b)]
            elif label == "reader x4":
                cfgs = [StreamConfig(f"r4-{name}", mode=mode, batch_size=b, concurrency=4)]
            else:
                cfgs = [StreamConfig(f"g-{name}", consumer_group="g", mode=mode, batch_size=b,
                                     shards=8, member_id=m, heartbeat_interval=0.5)
                        for m in ("m1", "m2")]
            return total / time_readers(store, total, cfgs, args.handler_ms / 1000)

        labels = list(runs)
        time_read_all(store, b)  # warm the cache once
        for r in range(args.repeat):
            log(f"run {r + 1}/{args.repeat}")
            name = uuid.uuid4().hex[:8]
            for label in labels[r % len(labels):] + labels[:r % len(labels)]:  # rotate
                runs[label].append(measure(label, name))
        log("notification latency")
        latency = notify_latency(store)
        log("append rate without, then with, a live listener")
        without = append_rate(store, args.seconds, "a")
        set_listener(store, True)
        with_listener = append_rate(store, args.seconds, "b")
        set_listener(store, False)

    medians = {k: statistics.median(v) for k, v in runs.items()}
    base = medians["read_all"]
    figures = {
        "events": total, "batch_size": b, "repeat": args.repeat,
        "handler_ms": args.handler_ms,
        "catch_up_events_per_s": {k: round(v, 1) for k, v in medians.items()},
        "ratio_to_read_all": {k: round(v / base, 3) for k, v in medians.items()},
        "runs_events_per_s": {k: [round(x, 1) for x in v] for k, v in runs.items()},
        "notify_latency_ms": {"median": round(statistics.median(latency), 2),
                              "p90": round(sorted(latency)[int(len(latency) * 0.9)], 2)},
        "appends_per_s": {"no_listener": round(without, 1), "listener": round(with_listener, 1),
                          "ratio": round(with_listener / without, 3)},
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"Catch-up over {total:,} events, pages of {b:,}, handler {args.handler_ms} ms, "
          f"median of {args.repeat} (events/s)")
    for k, v in medians.items():
        print(f"  {k:<10} {v:>12,.0f}   {v / base:>5.2f}x read_all")
    lat = figures["notify_latency_ms"]
    print(f"Live wake-up (append returned -> handler called): median {lat['median']} ms, "
          f"p90 {lat['p90']} ms")
    ap = figures["appends_per_s"]
    print(f"Appends/s, 4 threads, 1 event each: {ap['no_listener']:,.0f} with no live reader, "
          f"{ap['listener']:,.0f} with one ({ap['ratio']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
