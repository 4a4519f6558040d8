"""Aggregate load time with and without a snapshot, for 10 to 10,000 events, in one run.

    .venv/bin/python benchmarks/snapshots.py [--sizes 10,100,1000,10000] [--tail 5]
                                             [--repeat 7] [--json]

In a scratch database ``evstore_bench_<pid>`` (on the server of DATABASE_URL,
default postgresql://postgres@127.0.0.1:5432/postgres; dropped at the end),
one user aggregate per size gets that many events of the identity workload
(benchmarks/workload.py). For each size, in turns, R times:

- ``full``: ``load_aggregate_with_events(..., use_snapshot=False)``: every
  event read, decoded, checksum-verified and applied;
- ``snapshot``: the same call with the latest snapshot, taken ``--tail``
  events before the head (the state between two sweeps), so the load is one
  snapshot read and decompression plus ``--tail`` events.

Both load through the same pooled connection, warm. Figures are medians in
milliseconds; the ratio is full / snapshot.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evstore.core import EventRecord, PostgreSQLEventStore
from evstore.core.snapshots.aggregate import Aggregate
from evstore.core.snapshots.store import SnapshotStore

from benchmarks.scratch import DEFAULT_URL, scratch_database
from benchmarks.timing import log
from benchmarks.workload import record, specs


class UserAccount(Aggregate):
    """An identity-service user: the state stays small however many events it has."""

    aggregate_type = "User"

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.email = ""
        self.name = ""
        self.roles: list[str] = []
        self.logins = 0
        self.last_ip = ""
        self.deleted = False
        self.updates = 0

    def apply(self, event: EventRecord) -> None:
        d = event.event_data
        t = event.event_type
        if t == "UserCreated":
            self.email, self.name, self.roles = d["email"], d["display_name"], list(d["roles"])
        elif t == "UserUpdated":
            self.name = d["changes"].get("display_name", self.name)
            self.updates += 1
        elif t == "EmailChanged":
            self.email = d["new_email"]
        elif t == "UserLoggedIn":
            self.logins += 1
            self.last_ip = d["ip"]
        elif t == "UserDeleted":
            self.deleted = True

    def save(self) -> dict[str, Any]:
        return {"email": self.email, "name": self.name, "roles": self.roles,
                "logins": self.logins, "last_ip": self.last_ip, "deleted": self.deleted,
                "updates": self.updates}

    def restore(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10,100,1000,10000", help="events per aggregate")
    p.add_argument("--tail", type=int, default=5, help="events after the snapshot (default 5)")
    p.add_argument("--repeat", type=int, default=7, help="runs of each; medians (default 7)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p.parse_args(argv)


def fill(store: PostgreSQLEventStore, aggregate_id: str, count: int, upto: int | None = None,
         start: int = 0) -> None:
    """Append events start+1..upto (default count) to the aggregate, 1,000 an append."""
    end = count if upto is None else upto
    for first in range(start, end, 1000):
        n = min(1000, end - first)
        store.append_events(f"User-{aggregate_id}", [
            record(s, aggregate_id, first + i + 1) for i, s in enumerate(specs(first, n))])


def timed_ms(fn: Any) -> float:
    began = time.perf_counter()
    fn()
    return (time.perf_counter() - began) * 1000


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    import os

    results = []
    with scratch_database(os.environ.get("DATABASE_URL") or DEFAULT_URL) as url, \
            PostgreSQLEventStore(url) as store:
        store.initialize_schema()
        snaps = SnapshotStore(store)
        for size in sizes:
            agg = f"bench-{size}"
            covered = max(size - args.tail, 1)
            log(f"{size:,} events: appending, snapshot at {covered:,}")
            fill(store, agg, size, upto=covered)
            snap = snaps.create_snapshot(UserAccount, agg)
            assert snap is not None
            fill(store, agg, size, start=covered)
            full_state, v1 = snaps.load_aggregate_with_events(UserAccount, agg, use_snapshot=False)
            snap_state, v2 = snaps.load_aggregate_with_events(UserAccount, agg)
            assert (v1, full_state.save()) == (v2, snap_state.save()) == (size, snap_state.save())
            full, with_snap = [], []
            for _ in range(args.repeat):  # in turns, so drift falls on both alike
                full.append(timed_ms(lambda a=agg: snaps.load_aggregate_with_events(
                    UserAccount, a, use_snapshot=False)))
                with_snap.append(timed_ms(lambda a=agg: snaps.load_aggregate_with_events(
                    UserAccount, a)))
            f, s = statistics.median(full), statistics.median(with_snap)
            results.append({
                "events": size, "events_after_snapshot": size - covered,
                "full_ms": round(f, 3), "snapshot_ms": round(s, 3),
                "speedup": round(f / s, 2) if s else None,
                "state_bytes": snap.original_size, "stored_bytes": snap.stored_size,
                "runs_full_ms": [round(x, 3) for x in full],
                "runs_snapshot_ms": [round(x, 3) for x in with_snap],
            })
    if args.json:
        print(json.dumps({"benchmark": "snapshot load", "repeat": args.repeat,
                          "results": results}, indent=2))
        return 0
    print(f"Aggregate load time, median of {args.repeat} (ms); snapshot taken "
          f"{args.tail} events before the head")
    print(f"{'events':>8} {'full':>10} {'snapshot':>10} {'ratio':>8} {'state':>7} {'stored':>7}")
    for r in results:
        print(f"{r['events']:>8,} {r['full_ms']:>10.2f} {r['snapshot_ms']:>10.2f} "
              f"{r['speedup']:>7.1f}x {r['state_bytes']:>6}B {r['stored_bytes']:>6}B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
