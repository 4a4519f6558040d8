"""Soak test: the whole system under mixed load for a given time, then nothing lost.

    python -m benchmarks.soak --seconds 600 [--writers 3] [--readers 2] [--json out.json]

In a scratch database of its own (benchmarks/scratch.py) on DATABASE_URL and a
Redis namespace of its own on REDIS_URL, it runs together:

- ``--writers`` processes appending 1-3 events at a time to their own streams
  (each reports its append p50/p99 per interval and its memory);
- a consumer group of ``--readers`` member processes (EventStreamReader,
  catch-up, 4 shards) recording every event it handles;
- a worker pool (1 process x 2 threads) running a replay (a third of the way in)
  and an archive run to a local folder (half-way; events are kept, so the
  checks below cover every event);
- every ``--interval`` seconds: append p50/p99, events/s, the group's lag, the
  resident memory of each process.

At the end the writers stop and it checks: the events stored are exactly the
ones the writers acknowledged (counts), the global order read from the start
has every event once with increasing positions, the consumer group handled
every event, ``verify`` finds every checksum good, the replay and the archive
jobs succeeded. Exit 1 if any check fails. (The forget job is not part of the
run yet.)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GROUP = "soak"
SEEN_DDL = "CREATE TABLE IF NOT EXISTS public.soak_seen (event_id uuid NOT NULL, member text NOT NULL)"
SEEN_INSERT = "INSERT INTO public.soak_seen (event_id, member) VALUES (%s, %s)"


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(entry.name))
    return out


def quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def group_lag(cps: Any) -> tuple[int, float]:
    """The consumer group's lag; (-1, 0) before its members saved a checkpoint."""
    from evstore.core.errors import ConsumerNotFoundError

    try:
        events, seconds = cps.lag(GROUP, GROUP)
    except ConsumerNotFoundError:
        return -1, 0.0
    return int(events), float(seconds)


# -- roles run as child processes -------------------------------------------------

def run_writer(url: str, seed: int, interval: float) -> None:
    from evstore import EventMetadata, EventRecord, PostgreSQLEventStore

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rnd = random.Random(seed)
    versions: dict[str, int] = {}
    appended = 0
    lat: list[float] = []
    mark = time.monotonic()
    with PostgreSQLEventStore(url) as store:
        while not stop.is_set():
            stream = f"Acct-{seed}-{rnd.randrange(500)}"
            v = versions.get(stream, 0)
            n = rnd.choice((1, 1, 2, 3))
            events = [EventRecord(stream, "Acct", rnd.choice(("Opened", "Moved", "Closed")),
                                  {"amount": rnd.randrange(10_000), "note": "x" * rnd.randrange(200)},
                                  aggregate_version=v + i + 1,
                                  metadata=EventMetadata(user_id=str(seed), correlation_id=f"c{appended}"))
                      for i in range(n)]
            start = time.perf_counter()
            store.append_events(stream, events)
            lat.append(time.perf_counter() - start)
            versions[stream] = v + n
            appended += n
            now = time.monotonic()
            if now - mark >= interval:
                print(json.dumps({"appends": len(lat), "events": appended, "p50": quantile(lat, 0.5),
                                  "p99": quantile(lat, 0.99), "rss": rss_bytes(os.getpid())}), flush=True)
                lat, mark = [], now
    print(json.dumps({"final": True, "events": appended}), flush=True)


def run_reader(url: str, member: str) -> None:
    import psycopg
    from evstore.core.reader.reader import EventStreamReader
    from evstore.core.reader.streams import StreamConfig, StreamReadMode

    from evstore import PostgreSQLEventStore

    out = psycopg.connect(url, autocommit=True)

    def handle(event: Any) -> None:
        out.execute(SEEN_INSERT, [event.event_id, member])

    with PostgreSQLEventStore(url) as store:
        cfg = StreamConfig(GROUP, consumer_group=GROUP, mode=StreamReadMode.CATCH_UP, batch_size=200,
                           shards=4, lease_ttl=5.0, poll_interval=0.2, member_id=member)
        reader = EventStreamReader(store, cfg)
        signal.signal(signal.SIGTERM, lambda *_: reader.stop())
        reader.run(handle)


# -- the orchestrator --------------------------------------------------------------

class Child:
    def __init__(self, role: str, args: list[str], env: dict[str, str]) -> None:
        self.role = role
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.soak", *args], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.append(json.loads(line))
            except ValueError:
                pass

    def stop(self, timeout: float = 60) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.thread.join(timeout=10)


def soak(url: str, redis_url: str, seconds: float, writers: int, readers: int,
         interval: float) -> dict[str, Any]:
    import psycopg
    from evstore.core.archive import ArchivalPolicy
    from evstore.core.reader.checkpoints import CheckpointStore
    from evstore.workers.archive_jobs import start_archive_job
    from evstore.workers.broker import make_broker
    from evstore.workers.engine import JobEngine
    from evstore.workers.pool import WorkerPool
    from evstore.workers.replay import EventReplayService, ReplayConfig
    from evstore.workers.settings import load_job_settings

    import benchmarks.soak_handlers  # noqa: F401  (the replay's handler, registered here too)
    from evstore import PostgreSQLEventStore

    namespace = f"evstore-soak-{os.getpid()}"
    archive_dir = Path(tempfile.mkdtemp(prefix="evstore-soak-archive-"))
    target = f"file://{archive_dir}"
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT),
           "EVSTORE_DRAMATIQ_NAMESPACE": namespace, "EVSTORE_ARCHIVE_TARGETS": target}
    os.environ.update({"EVSTORE_DRAMATIQ_NAMESPACE": namespace, "EVSTORE_ARCHIVE_TARGETS": target})
    checks: dict[str, Any] = {}
    samples: list[dict[str, Any]] = []
    with PostgreSQLEventStore(url) as store:
        store.initialize_schema()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SEEN_DDL)
        settings = load_job_settings(namespace=namespace)
        broker = make_broker(redis_url, settings)
        engine = JobEngine(store, broker, settings)
        pool_env = {"EVSTORE_DRAMATIQ_NAMESPACE": namespace, "PYTHONPATH": str(ROOT),
                    "EVSTORE_ARCHIVE_TARGETS": target}
        pool = WorkerPool(url, redis_url, processes=1, threads=2, env=pool_env, cwd=ROOT,
                          handler_modules=["benchmarks.soak_handlers"]).start()
        members: list[Child] = []
        try:
            members += [Child("reader", ["--role", "reader", "--url", url, "--member", f"m{i}"], env)
                       for i in range(readers)]
            wchildren = [Child("writer", ["--role", "writer", "--url", url, "--seed", str(i),
                                          "--interval", str(interval)], env) for i in range(writers)]
            started = time.monotonic()
            replay_job = archive_job = None
            cps = CheckpointStore(store)
            try:
                while (elapsed := time.monotonic() - started) < seconds:
                    time.sleep(interval)
                    elapsed = time.monotonic() - started
                    written = any(w.lines for w in wchildren)  # (a job needs events to cover)
                    if replay_job is None and written and elapsed >= seconds / 3:
                        replay_job = EventReplayService(store, broker).replay_events(
                            ReplayConfig(handler_names=["soak_noop"], batch_size=2000)).job_id
                    if archive_job is None and written and elapsed >= seconds / 2:
                        policy = ArchivalPolicy(name="soak", strategy="count_based", keep_events=0,
                                                target_url=target, segment_size=5000,
                                                delete_after_archive=False)
                        archive_job = start_archive_job(engine, policy, created_by="soak")
                    samples.append(_sample(elapsed, wchildren, members, pool, cps))
                    s = samples[-1]
                    print(f"{s['t']:6.0f} s  {s['events_per_s']:7.0f} ev/s  append p50 {s['p50_ms']:6.2f} ms "
                          f"p99 {s['p99_ms']:6.2f} ms  group lag {s['lag_events']:>7,}  "
                          f"rss MB {json.dumps(s['rss_mb'])}", flush=True)
                # On a slow start the jobs may not have begun yet: start them while the writers run.
                if replay_job is None:
                    replay_job = EventReplayService(store, broker).replay_events(
                        ReplayConfig(handler_names=["soak_noop"], batch_size=2000)).job_id
                if archive_job is None:
                    archive_job = start_archive_job(engine, ArchivalPolicy(
                        name="soak", strategy="count_based", keep_events=0, target_url=target,
                        segment_size=5000, delete_after_archive=False), created_by="soak")
                time.sleep(min(interval, 2.0))
            finally:
                for w in wchildren:
                    w.stop()
            acknowledged = sum(next((x["events"] for x in w.lines if x.get("final")), -1) for w in wchildren)
            checks["writers_reported"] = all(any(x.get("final") for x in w.lines) for w in wchildren)
            # the jobs and the group finish what was written
            for name, job in (("replay", replay_job), ("archive", archive_job)):
                if job is None:
                    checks[f"{name}_job"] = "not started (run too short)"
                    continue
                done = engine.wait(job, timeout=600)
                checks[f"{name}_job"] = done.status
            deadline = time.monotonic() + 300
            while group_lag(cps)[0] != 0 and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:  # on any failure too: no process of the run is left behind
            for m in members:
                m.stop(timeout=20)
            pool.stop()
            broker.client.close()
        checks.update(_final_checks(store, url, acknowledged))
    ok = (checks["writers_reported"] and checks["counts_match"] and checks["global_order_ok"]
          and checks["group_every_event"] and checks["verify_ok"]
          and checks.get("replay_job") in ("succeeded", "not started (run too short)")
          and checks.get("archive_job") in ("succeeded", "not started (run too short)"))
    return {"ok": bool(ok), "seconds": seconds, "writers": writers, "readers": readers,
            "acknowledged_events": acknowledged, "checks": checks, "samples": samples,
            "append_p50_ms_over_time": [s["p50_ms"] for s in samples],
            "append_p99_ms_over_time": [s["p99_ms"] for s in samples]}


def _sample(elapsed: float, writers: list[Child], members: list[Child], pool: Any,
            cps: Any) -> dict[str, Any]:
    recent = [w.lines[-1] for w in writers if w.lines and not w.lines[-1].get("final")]
    appends = sum(x["appends"] for x in recent)
    p50 = max((x["p50"] for x in recent), default=0.0)
    p99 = max((x["p99"] for x in recent), default=0.0)
    total = sum(x["events"] for x in recent)
    lag_events, lag_seconds = group_lag(cps)
    rss = {f"writer{i}": rss_bytes(w.proc.pid) for i, w in enumerate(writers)}
    rss.update({f"reader{i}": rss_bytes(m.proc.pid) for i, m in enumerate(members)})
    workers = [pool.pid, *children(pool.pid)]
    rss.update({f"worker{i}": rss_bytes(p) for i, p in enumerate(workers)})
    rss.update({"orchestrator": rss_bytes(os.getpid())})
    return {"t": elapsed, "appends": appends, "events": total, "p50_ms": p50 * 1000, "p99_ms": p99 * 1000,
            "events_per_s": _rate(writers), "lag_events": lag_events, "lag_seconds": lag_seconds,
            "rss_mb": {k: round(v / 2**20, 1) for k, v in rss.items()}}


_last: dict[int, tuple[float, int]] = {}


def _rate(writers: list[Child]) -> float:
    """Events per second appended since the previous sample (all writers)."""
    now = time.monotonic()
    total = sum(w.lines[-1]["events"] for w in writers if w.lines)
    prev = _last.get(0)
    _last[0] = (now, total)
    return 0.0 if prev is None else (total - prev[1]) / max(now - prev[0], 1e-9)


def _final_checks(store: Any, url: str, acknowledged: int) -> dict[str, Any]:
    import psycopg

    out: dict[str, Any] = {}
    with psycopg.connect(url) as conn:
        (stored,) = conn.execute("SELECT count(*) FROM events.events").fetchone()  # type: ignore[misc]
        (seen, distinct) = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM public.soak_seen").fetchone()  # type: ignore[misc]
    out["stored_events"] = int(stored)
    out["counts_match"] = int(stored) == acknowledged
    # the global order from the start: every event once, positions increasing
    ids, last, increasing, checkpoint = set(), None, True, None
    while True:
        page = store.read_all(after=checkpoint, limit=5000)
        for e in page.events:
            pos = (e.transaction_id, e.global_position)
            increasing = increasing and (last is None or pos > last)
            last = pos
            ids.add(e.event_id)
        checkpoint = page.checkpoint
        if page.at_end:
            break
    out["global_order_events"] = len(ids)
    out["global_order_ok"] = increasing and len(ids) == int(stored)
    out["group_handled"] = int(seen)
    out["group_repeats"] = int(seen) - int(distinct)
    out["group_every_event"] = int(distinct) == int(stored)
    report = store.verify()
    out["verify_ok"] = bool(report.ok)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--writers", type=int, default=3)
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--json", type=Path, default=None, help="write the figures and checks here")
    ap.add_argument("--role", choices=["writer", "reader"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--url", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--member", default="m0", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "writer":
        run_writer(args.url, args.seed, args.interval)
        return
    if args.role == "reader":
        run_reader(args.url, args.member)
        return
    from benchmarks.scratch import DEFAULT_URL, scratch_database

    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    print(f"soak: {args.seconds:g} s, {args.writers} writer(s), a consumer group of {args.readers}, "
          "a replay and an archive run on a worker pool (machine shared: figures are indicative)",
          flush=True)
    with scratch_database(os.environ.get("DATABASE_URL", DEFAULT_URL)) as url:
        result = soak(url, redis_url, args.seconds, args.writers, args.readers, args.interval)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({"ok": result["ok"], "acknowledged_events": result["acknowledged_events"],
                      "checks": result["checks"]}, indent=2, default=str))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
