"""Benchmarks of the storage core, each figure beside a baseline measured in the same run.

    .venv/bin/python benchmarks/run_core.py [--events N] [--repeat R] [--json]

Creates a scratch database ``evstore_bench_<pid>`` on the server of
DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres) and drops
it at the end. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from evstore.core import PostgreSQLEventStore, load_settings

from benchmarks import appends, reads
from benchmarks.report import Figure, as_json, runs, table
from benchmarks.scratch import DEFAULT_URL, create_raw_table, scratch_database
from benchmarks.timing import Clocked, Measure, Writer, Writers, log, run_writers, total
from benchmarks.workload import specs


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1_000_000,
                   help="events loaded for the read_all figure (default 1,000,000)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each workload; medians are reported")
    p.add_argument("--batches", type=int, default=20,
                   help="batches of 1,000 events per batch-append run (default 20)")
    p.add_argument("--seconds", type=float, default=2.0,
                   help="duration of each single-event append run (default 2)")
    p.add_argument("--slice", type=float, default=0.5,
                   help="single-event runs take turns in slices of this many seconds (default 0.5)")
    p.add_argument("--writers", type=int, nargs="+", default=[1, 8],
                   help="concurrent writer counts for single-event appends (default 1 8)")
    p.add_argument("--load-threads", type=int, default=1,
                   help="threads loading the read figure's events (default 1: the GIL makes 2 slower)")
    p.add_argument("--page", type=int, default=1000, help="page size of read_all (default 1000)")
    p.add_argument("--read-passes", type=int, default=1,
                   help="full passes over the loaded events per reader (default 1)")
    p.add_argument("--segment", type=int, default=0,
                   help="events per timed read segment (default: a twentieth of --events)")
    p.add_argument("--only", choices=["append", "single", "read"], nargs="+",
                   help="run only these parts (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--save", metavar="PATH", help="also write the JSON to this file")
    args = p.parse_args(argv)
    counts = (args.repeat, args.events, args.batches, args.read_passes, args.page)
    if min(counts) < 1 or min(args.seconds, args.slice) <= 0:
        p.error("--repeat, --events, --batches, --read-passes, --page, --seconds and --slice "
                "must be positive")
    return args


def make_store(url: str, schema: str, *, verify: bool = True, pool: Any = None,
               pool_size: int = 10) -> PostgreSQLEventStore:
    settings = load_settings(database_url=url, schema_name=schema, compression="none",
                             verify_reads=verify, pool_size=pool_size)
    return PostgreSQLEventStore(pool=pool, settings=settings) if pool else PostgreSQLEventStore(
        url, settings=settings)


def batch_figure(url: str, store: PostgreSQLEventStore, raw: str, args: argparse.Namespace) -> Figure:
    """Each run: ``--batches`` batches per side, the sides alternating batch by batch."""
    ours, base = Measure("evstore append_events"), Measure("raw COPY")
    warm = [specs(0, 1000)]
    appends.batch_ours(store, warm, "warm-batch")
    appends.batch_raw_copy(url, raw, warm, "warm-batch")
    for r in range(args.repeat):
        mine: list[Clocked] = []
        theirs: list[Clocked] = []
        for b in range(args.batches):
            batch = [specs((r * args.batches + b) * 1000, 1000)]
            tag = f"batch-{r}-{b}"
            for which in ((0, 1) if (r + b) % 2 == 0 else (1, 0)):
                if which == 0:
                    mine.append(appends.batch_ours(store, batch, tag))
                else:
                    theirs.append(appends.batch_raw_copy(url, raw, batch, tag))
        a, b_ = ours.add(total(mine)), base.add(total(theirs))
        log(f"  batch run {r + 1}: evstore {a:,.0f} ev/s, COPY {b_:,.0f} ev/s")
    return Figure("batch append, 1,000 per call", ours, base, 0.6)


def single_figures(url: str, store: PostgreSQLEventStore, raw: str, args: argparse.Namespace) -> list[Figure]:
    """Each run: ``--seconds`` per side in slices of ``--slice`` s, the sides taking turns."""
    figures = []
    recorder, close_es = appends.eventsourcing_recorder(url, "es_bench", max(args.writers))
    slices = max(1, round(args.seconds / args.slice))
    try:
        for n in args.writers:
            ours = Measure("evstore append_events")
            base = Measure("raw INSERT+COMMIT")
            peer = Measure("eventsourcing recorder")
            workloads: list[tuple[Measure, Callable[[str], Writer]]] = [
                (ours, lambda tag: appends.single_ours(store, tag)),
                (base, lambda tag: appends.single_raw(url, raw, tag)),
                (peer, lambda tag: appends.single_eventsourcing(recorder, tag)),
            ]
            for m, make in workloads:  # warm-up: connections, prepared statements
                run_writers(n, make(f"warm-{n}-{m.label[:3]}"), 0.5)
            for r in range(args.repeat):
                sets = [Writers(n, make(f"s{n}-r{r}-{m.label[:3]}")) for m, make in workloads]
                parts: list[list[Clocked]] = [[] for _ in workloads]
                try:
                    for sl in range(slices):
                        for k in range(len(workloads)):
                            i = (k + sl + r) % len(workloads)
                            parts[i].append(sets[i].run(args.seconds / slices))
                finally:
                    for w in sets:
                        w.close()
                rates = [m.add(total(p)) for (m, _), p in zip(workloads, parts, strict=True)]
                log(f"  {n} writer(s) run {r + 1}: " + ", ".join(
                    f"{m.label} {x:,.0f} ev/s" for (m, _), x in zip(workloads, rates, strict=True)))
            label = f"{n} writer{'s' if n > 1 else ''}"
            figures.append(Figure(f"single append, {label}", ours, base, 0.7))
            figures.append(Figure(f"single append, {label} vs eventsourcing", ours, peer,
                                  2.0 if n >= 8 else None))
    finally:
        close_es()
    return figures


def read_figures(url: str, args: argparse.Namespace, context: dict[str, Any]) -> list[Figure]:
    store = make_store(url, "bench_read")
    store.initialize_schema()
    unverified = make_store(url, "bench_read", verify=False, pool=store.pool)
    try:
        log(f"loading {args.events:,} events with append_events (1,000 per call, "
            f"{args.load_threads} thread(s)) ...")
        done = [0]
        marks = [time.perf_counter(), 0]  # time and count at the last report

        def progress(n: int) -> None:
            done[0] += n
            if done[0] % 100_000 < n:
                now = time.perf_counter()
                rate = (done[0] - marks[1]) / (now - marks[0])
                marks[:] = [now, done[0]]
                log(f"  loaded {done[0]:,} ({rate:,.0f} ev/s since the last line)")

        loaded = reads.load(store, args.events, args.load_threads, progress)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute('VACUUM ANALYZE "bench_read".events')
            size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
        rate = loaded.events / loaded.seconds
        context["load"] = (f"{loaded.events:,} events by append_events (1,000 per call, "
                           f"{args.load_threads} thread(s)) in {loaded.seconds:.1f} s = {rate:,.0f} ev/s; "
                           f"database {size[0] if size else '?'}")
        log(f"  {context['load']}")
        with_verify = Measure("evstore read_all (verify on)")
        without = Measure("evstore read_all (verify off)")
        base = Measure("raw keyset SELECT")
        segment = args.segment or max(args.page, (args.events // 20) // args.page * args.page)
        for p in range(args.read_passes):
            log(f"read pass {p + 1}: segments of {segment:,} events, readers taking turns ...")
            reads.interleaved_pass([
                (with_verify, reads.StoreReader(store, args.page)),
                (without, reads.StoreReader(unverified, args.page)),
                (base, reads.RawReader(url, store.table("events"), args.page)),
            ], segment)
        for m in (with_verify, without, base):
            t = reads.totals(m)
            log(f"  {m.label}: {t['events']:,} events in {t['seconds']} s = {t['events_per_s']:,.0f} ev/s")
        context["read"] = (f"{args.read_passes} pass(es) over {args.events:,} events, page {args.page}, "
                           f"medians of {len(base.rates)} segments of {segment:,} events")
        return [
            Figure("read_all, checksums verified", with_verify, base, 0.6),
            Figure("read_all, verify_reads=False", without, base, 0.6),
        ]
    finally:
        store.close()


def _loadavg() -> str:
    """Other work on the machine skews every figure: say how busy it was."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    admin_url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    parts = set(args.only or ["append", "single", "read"])
    context: dict[str, Any] = {}
    figures: list[Figure] = []
    started = time.perf_counter()
    load_start = _loadavg()
    with scratch_database(admin_url) as url:
        with psycopg.connect(url) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        context["machine"] = (f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
                              f"PostgreSQL {version[0] if version else '?'}")
        context["settings"] = (f"repeat={args.repeat}, batches={args.batches}x1000, "
                               f"seconds={args.seconds}, events={args.events:,}, page={args.page}")
        log(f"scratch database on {context['machine']}")
        if parts & {"append", "single"}:
            store = make_store(url, "bench")
            store.initialize_schema()
            raw = create_raw_table(url, "raw", store.schema)
            try:
                if "append" in parts:
                    log("batch appends ...")
                    figures.append(batch_figure(url, store, raw, args))
                if "single" in parts:
                    log("single-event appends ...")
                    figures.extend(single_figures(url, store, raw, args))
            finally:
                store.close()
        if "read" in parts:
            figures.extend(read_figures(url, args, context))
    context["total"] = f"{time.perf_counter() - started:.0f} s"
    context["load average (1, 5, 15 min) at start / end"] = f"{load_start} / {_loadavg()}"
    if args.save:
        Path(args.save).write_text(as_json(figures, context) + "\n")
    if args.json:
        print(as_json(figures, context))
    else:
        print(table(figures, context))
        print()
        print(runs(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
