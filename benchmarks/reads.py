"""Loading the read benchmark's events, and paging through all of them.

Our side pages with ``read_all(after=checkpoint, limit=page)`` until
``at_end``; the raw baseline runs a keyset-paginated SELECT of the same
columns from the same table in the same order (event_data and metadata come
as the JSON text jsonb prints, as the store selects them) and runs
``json.loads`` on both, so both decode the same JSON.

A pass reads every event once per reader, in segments (100,000 events by
default): the readers take turns segment by segment, in a rotating order, so
background load and cache warmth fall on all of them alike. Each segment is
one measurement; the figure is the median segment rate.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, Protocol

from evstore.core import NO_STREAM, Position, PostgreSQLEventStore
from evstore.core.store.postgres import COLUMNS

from benchmarks.scratch import connect
from benchmarks.timing import Clock, Clocked, Measure, log
from benchmarks.workload import record, specs

LOAD_BATCH = 1000


def load(store: PostgreSQLEventStore, total: int, threads: int,
         progress: Callable[[int], None] | None = None) -> Clocked:
    """Append ``total`` events in batches of 1,000 (one new stream per batch).

    Generating the events runs inside the clock too, but is cheap next to
    the appends.
    """
    batches = (total + LOAD_BATCH - 1) // LOAD_BATCH
    next_batch = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []

    def body() -> None:
        try:
            while True:
                with lock:
                    b = next_batch[0]
                    next_batch[0] = b + 1
                if b >= batches or errors:
                    return
                count = min(LOAD_BATCH, total - b * LOAD_BATCH)
                stream = f"load-{b}"
                events = [record(s, stream, i + 1)
                          for i, s in enumerate(specs(b * LOAD_BATCH, count))]
                store.append_events(stream, events, expected_version=NO_STREAM)
                if progress:
                    progress(count)
        except BaseException as exc:
            errors.append(exc)

    clock = Clock()
    pool = [threading.Thread(target=body, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return clock.stop(total)


class Reader(Protocol):
    done: bool
    count: int
    total: int  # sum of global positions read: both sides must agree

    def read(self, events: int) -> int: ...

    def close(self) -> None: ...


class StoreReader:
    """read_all pages, carrying the checkpoint from one call to the next."""

    def __init__(self, store: PostgreSQLEventStore, page: int) -> None:
        self.store, self.page = store, page
        self.checkpoint: Position | None = None
        self.done = False
        self.count = self.total = 0

    def read(self, events: int) -> int:
        got = 0
        while got < events and not self.done:
            result = self.store.read_all(after=self.checkpoint, limit=self.page)
            for event in result.events:
                self.total += event.global_position or 0
            got += len(result.events)
            self.checkpoint = result.checkpoint
            self.done = result.at_end
        self.count += got
        return got

    def close(self) -> None:
        pass


class RawReader:
    """Keyset pagination on (transaction_id, global_position) of the same table."""

    def __init__(self, url: str, table: str, page: int) -> None:
        self.conn = connect(url)
        self.page = page
        self.text = (
            f"SELECT {COLUMNS} FROM {table} "
            "WHERE (transaction_id, global_position) > (%s::text::xid8, %s) "
            "ORDER BY transaction_id, global_position LIMIT %s"
        )
        self.after: tuple[int, int] = (0, 0)
        self.done = False
        self.count = self.total = 0

    def read(self, events: int) -> int:
        got = 0
        while got < events and not self.done:
            rows = self.conn.execute(self.text, (str(self.after[0]), self.after[1], self.page)).fetchall()
            for row in rows:
                self.total += row[8]
                # the same JSON decoding the store does (a payload row has no event_data)
                if row[10] is not None:
                    json.loads(row[10])
                json.loads(row[12])
            got += len(rows)
            if rows:
                self.after = (rows[-1][9], rows[-1][8])
            self.done = len(rows) < self.page
        self.count += got
        return got

    def close(self) -> None:
        self.conn.close()


def interleaved_pass(readers: list[tuple[Measure, Reader]], segment: int) -> None:
    """Every reader reads everything, segment by segment, taking turns."""
    turn = 0
    try:
        while not all(r.done for _, r in readers):
            for k in range(len(readers)):
                measure, reader = readers[(k + turn) % len(readers)]
                if reader.done:
                    continue
                clock = Clock()
                got = reader.read(segment)
                if got:
                    measure.add(clock.stop(got))
            turn += 1
            log(f"  read {readers[0][1].count:,} events per reader")
    finally:
        for _, r in readers:
            r.close()
    seen = {(r.count, r.total) for _, r in readers}
    if len(seen) != 1:
        raise SystemExit(f"the readers disagree on what they read (count, sum of positions): {seen}")


def totals(measure: Measure) -> dict[str, Any]:
    """Whole-pass rate of a reader, beside its median segment rate."""
    events, seconds = sum(measure.events), sum(measure.seconds)
    return {"events": events, "seconds": round(seconds, 2),
            "events_per_s": round(events / seconds, 1) if seconds else 0.0}
