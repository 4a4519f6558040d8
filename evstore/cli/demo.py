"""``evstore demo``: the identity-service workload end to end.

Appends thousands of users' events with several concurrent writers (exact
expected versions, in a few appends per user), then reads everything back
through the global order with checkpoints, reads streams, verifies every
checksum and prints a summary. On a machine with no DATABASE_URL it runs on
the embedded PostgreSQL, whose data stays for the next run.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from evstore.core.store.persistence import Position
from evstore.core.store.postgres import PostgreSQLEventStore
from evstore.workload import UserAccount, UserScript, email_domains, generate, power_user_script

from .common import (
    check_range,
    console,
    err_console,
    escape,
    handle_errors,
    human_bytes,
    open_store,
    plain,
)
from .demo_privacy import run_privacy_demo
from .demo_query import run_query_demo


def _append_user(store: PostgreSQLEventStore, script: UserScript, rng_split: int) -> int:
    """A user's events in up to three appends, each with the exact expected version."""
    events = script.events
    cuts = sorted({0, len(events), *(i for i in (1, rng_split) if 0 < i < len(events))})
    for lo, hi in itertools.pairwise(cuts):
        store.append_events(script.stream_id, events[lo:hi], expected_version=lo)
    return len(events)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=err_console)


def demo(
    users: Annotated[int, typer.Option(help="Users (streams) to create in this run.")] = 3000,
    writers: Annotated[int, typer.Option(help="Concurrent writer threads.")] = 4,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: a new one each run).")] = None,
    power_users: Annotated[int, typer.Option(help="Service accounts with very long streams.")] = 3,
    power_logins: Annotated[int, typer.Option(help="Logins of each service account.")] = 3000,
    replay: Annotated[
        bool, typer.Option(help="Replay every stored event on Dramatiq workers (embedded Redis by default).")
    ] = True,
    worker_processes: Annotated[int, typer.Option(help="Worker processes for the replay.")] = 2,
    archive: Annotated[
        bool, typer.Option(help="Archive the oldest month to $EVSTORE_HOME/archive, verify and restore it.")
    ] = True,
    web_console: Annotated[bool, typer.Option(
        "--console", help="Then serve the web console on 127.0.0.1 (its address printed) until Ctrl-C.")
    ] = False,
) -> None:
    """Run the identity-service demo: append, read back, verify, summarise."""
    check_range("--users", users, minimum=0, maximum=1_000_000)
    check_range("--writers", writers, minimum=1, maximum=64)
    check_range("--power-users", power_users, minimum=0, maximum=100)
    check_range("--power-logins", power_logins, minimum=1, maximum=1_000_000)
    check_range("--worker-processes", worker_processes, minimum=1, maximum=32)
    run_id = uuid.uuid4().hex[:8]
    scripts = generate(users, seed=seed, run_id=run_id)
    rng = random.Random(None if seed is None else f"{seed}-service-accounts")  # not the users' ids
    now = datetime.now(UTC)
    busy = [power_user_script(rng, now, power_logins, run_id) for _ in range(power_users)]
    total = sum(len(s.events) for s in scripts) + sum(len(s.events) for s in busy)
    with open_store(initialize=True) as store:
        before = store.metrics(exact=True).events
        start_checkpoint = _head(store)
        console.print(Panel.fit(
            f"store: {escape(repr(store))}\nevents already stored: {before:,}\n"
            f"this run ({run_id}): {users:,} users, {total:,} events, {writers} writers",
            title="evstore demo",
        ))
        # 1. Append with concurrent writers, while a consumer group of two
        #    members builds a read model (users per e-mail domain) live.
        model = ReadModel(run_id)
        members = model.start(store, members=2)
        t0 = time.perf_counter()
        try:
            with _progress() as progress, ThreadPoolExecutor(writers) as pool:
                task = progress.add_task("appending", total=total)
                futures = [pool.submit(_append_user, store, s, 1 + i % 4) for i, s in enumerate(scripts)]
                futures += [pool.submit(_append_long, store, s) for s in busy]
                for f in futures:
                    progress.advance(task, f.result())
            append_s = time.perf_counter() - t0
            model.wait_for(expected_model_events(scripts + busy), timeout=120)
        finally:
            for member in members:
                member.stop()
            for member in members:
                member.join()
        expected_domains = email_domains(scripts + busy)

        # 2. Read this run's events back through the global order, with checkpoints.
        t0 = time.perf_counter()
        seen: Counter[str] = Counter()
        per_stream_ok = True
        last_pos: dict[str, int] = {}
        checkpoint: Position | None = start_checkpoint
        with _progress() as progress:
            task = progress.add_task("reading", total=total)
            while True:
                page = store.read_all(after=checkpoint, limit=store.settings.batch_size)
                for e in page.events:
                    if e.metadata.extra.get("demo_run") != run_id:
                        continue
                    seen[e.event_type] += 1
                    assert e.stream_id is not None and e.stream_position is not None
                    if last_pos.get(e.stream_id, 0) + 1 != e.stream_position:
                        per_stream_ok = False
                    last_pos[e.stream_id] = e.stream_position
                    progress.advance(task)
                checkpoint = page.checkpoint
                if page.at_end:
                    break
        read_s = time.perf_counter() - t0
        read_total = sum(seen.values())

        # 3. Stream reads and a full checksum verification.
        sample = scripts[: min(200, len(scripts))]
        stream_mismatch = sum(
            1 for s in sample
            if [e.event_id for e in store.read_stream(s.stream_id)] != [e.event_id for e in s.events]
        )
        t0 = time.perf_counter()
        with _progress() as progress:
            task = progress.add_task("verifying", total=before + total)
            report = store.verify(progress=lambda n: progress.advance(task, n))
        verify_s = time.perf_counter() - t0
        metrics = store.metrics(exact=True)
        health = store.health()
        parts = store.list_partitions()

        # 4. Snapshots: the busiest aggregates, loaded with and without one.
        snapshot_rows = _snapshots(store, busy)

        # 5. A replay job fanned out in batches to real worker processes.
        replayed = _replay(store, worker_processes) if replay else None

        # 6. Archive the oldest month to a local folder: preview, run, verify, restore.
        archived = _archive(store) if archive else None

        # 7. Queries: criteria, a --where filter, full text, the cache, explain, anomalies
        # (demo_query.py); before the forgets, which keep cached answers from being served.
        run_query_demo(store, run_id)

        # 8. Privacy: encryption on, a few members forgotten by forget jobs (demo_privacy.py).
        run_privacy_demo(store)

    table = Table(title="demo summary", title_justify="left", show_header=False)
    table.add_column()
    table.add_column(justify="right")
    table.add_row("appended this run", f"{total:,} events in {append_s:.1f} s ({total / append_s:,.0f}/s)")
    table.add_row("read back (global order)", f"{read_total:,} events in {read_s:.1f} s")
    table.add_row("each event seen once, streams in order",
                  "[green]yes[/]" if read_total == total and per_stream_ok else "[red]NO[/]")
    table.add_row("sampled streams equal to what was written",
                  "[green]yes[/]" if not stream_mismatch else f"[red]{stream_mismatch} differ[/]")
    verdict = "[green]no mismatch[/]" if report.ok else f"[red]{len(report.mismatches)} mismatches[/]"
    table.add_row("checksums verified", f"{report.checked:,} in {verify_s:.1f} s, {verdict}")
    table.add_row("events in the store", f"{before:,} before, {metrics.events:,} now")
    table.add_row("streams", f"{metrics.streams:,}")
    table.add_row("partitions", plain(", ".join(p.month for p in parts)))
    table.add_row("on disk", human_bytes(metrics.total_bytes))
    table.add_row("health", "[green]ok[/]" if health.ok else "[red]unhealthy[/]")
    if replayed is not None:
        table.add_row(
            f"replay job {replayed.job_id} ({worker_processes} worker processes)",
            f"{replayed.successful_events:,} of {replayed.total_events:,} events, "
            f"{replayed.failed_events} failed, {replayed.events_per_second:,.0f}/s, {replayed.status}",
        )
    if archived is not None:
        table.add_row(
            f"archive of {archived['month']} (file target)",
            f"{archived['events']:,} events, {archived['ratio']:.1f}x smaller, verified "
            + ("[green]ok[/]" if archived["verified"] else "[red]FAILED[/]")
            + f", {archived['restored']:,} restored",
        )
        table.add_row("archive folder", plain(archived["url"]))
    console.print(table)
    domains = Table(title="read model: users per e-mail domain (consumer group, 2 members)",
                    title_justify="left")
    domains.add_column("domain")
    domains.add_column("users", justify="right")
    for domain, count in sorted(model.domains().items()):
        domains.add_row(plain(domain), f"{count:,}")
    console.print(domains)
    console.print(
        f"members handled {' + '.join(str(n) for n in model.per_member.values())} events; "
        "read model equals the events written: "
        + ("[green]yes[/]" if model.domains() == expected_domains else "[red]NO[/]")
    )
    snaps = Table(title="busiest aggregates: load time", title_justify="left")
    for col in ("user", "events", "full replay", "from snapshot", "speed-up", "same state"):
        snaps.add_column(col, justify="left" if col == "user" else "right")
    for row in snapshot_rows:
        snaps.add_row(plain(row["user"][:8]), f"{row['events']:,}", f"{row['full_ms']:.1f} ms",
                      f"{row['snap_ms']:.1f} ms", f"{row['full_ms'] / max(row['snap_ms'], 1e-6):.0f}x",
                      "[green]yes[/]" if row["same"] else "[red]NO[/]")
    if snapshot_rows:
        console.print(snaps)
    types = Table(title="this run's events by type", title_justify="left")
    types.add_column("event type")
    types.add_column("events", justify="right")
    for name, count in seen.most_common():
        types.add_row(plain(name), f"{count:,}")
    console.print(types)
    ok = read_total == total and per_stream_ok and not stream_mismatch and report.ok and health.ok
    ok = ok and model.domains() == expected_domains and all(r["same"] for r in snapshot_rows)
    if archived is not None:
        ok = ok and archived["verified"] and archived["restored"] + archived["present"] == archived["events"]
    if replayed is not None:
        ok = ok and replayed.failed_events == 0 and replayed.successful_events == replayed.total_events
    if web_console:
        from .demo_console import serve_console

        serve_console()
    if not ok:
        raise typer.Exit(1)


MODEL_TYPES = ["UserRegistered", "EmailChanged", "UserDeleted"]


def expected_model_events(scripts: list[UserScript]) -> int:
    return sum(1 for s in scripts for e in s.events if e.event_type in MODEL_TYPES)


class ReadModel:
    """Users per e-mail domain, fed by a consumer group of EventStreamReaders."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.users: dict[str, str | None] = {}
        self.handled = 0
        self.per_member: dict[int, int] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def start(self, store: PostgreSQLEventStore, members: int) -> list[Any]:
        from evstore.core.reader.reader import EventStreamReader
        from evstore.core.reader.streams import StreamConfig, StreamReadMode

        readers = []
        for number in range(members):
            config = StreamConfig("demo-users-by-domain", consumer_group="demo",
                                  mode=StreamReadMode.CATCH_UP, event_types=MODEL_TYPES,
                                  aggregate_types=["User"], batch_size=500)
            reader = EventStreamReader(store, config)
            reader.start(lambda event, n=number: self.handle(n, event))
            readers.append(reader)
        return readers

    def handle(self, member: int, event: Any) -> None:
        if event.metadata.extra.get("demo_run") != self.run_id:
            return
        data = event.event_data
        with self._lock:
            if event.event_type == "UserRegistered":
                self.users[event.aggregate_id] = str(data["email"]).rsplit("@", 1)[1]
            elif event.event_type == "EmailChanged":
                self.users[event.aggregate_id] = str(data["new_email"]).rsplit("@", 1)[1]
            else:
                self.users[event.aggregate_id] = None
            self.handled += 1
            self.per_member[member] = self.per_member.get(member, 0) + 1
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> None:
        with self._lock:
            self._changed.wait_for(lambda: self.handled >= count, timeout=timeout)

    def domains(self) -> dict[str, int]:
        with self._lock:
            out: dict[str, int] = {}
            for domain in self.users.values():
                if domain is not None:
                    out[domain] = out.get(domain, 0) + 1
            return out


def _append_long(store: PostgreSQLEventStore, script: UserScript, chunk: int = 500) -> int:
    for lo in range(0, len(script.events), chunk):
        store.append_events(script.stream_id, script.events[lo:lo + chunk], expected_version=lo)
    return len(script.events)


def _snapshots(store: PostgreSQLEventStore, busy: list[UserScript]) -> list[dict[str, Any]]:
    from evstore.core.snapshots.store import SnapshotStore

    snapshots = SnapshotStore(store)
    rows = []
    for script in busy:
        t0 = time.perf_counter()
        full, version = snapshots.load_aggregate_with_events(UserAccount, script.user_id, "User",
                                                             use_snapshot=False)
        full_ms = (time.perf_counter() - t0) * 1000
        snapshots.create_snapshot(UserAccount, script.user_id, "User")
        t0 = time.perf_counter()
        fast, fast_version = snapshots.load_aggregate_with_events(UserAccount, script.user_id, "User")
        snap_ms = (time.perf_counter() - t0) * 1000
        rows.append({"user": script.user_id, "events": version, "full_ms": full_ms, "snap_ms": snap_ms,
                     "same": fast.save() == full.save() and fast_version == version})
    return rows


def _replay(store: PostgreSQLEventStore, processes: int) -> Any:
    from evstore.workers.demo import run_replay_demo

    with _progress() as bar:
        task = bar.add_task("replaying", total=None)
        return run_replay_demo(
            store,
            processes=processes,
            announce=lambda text: err_console.print(text, style="dim", highlight=False, markup=False),
            on_started=lambda job_id, job: bar.update(task, total=job.items_total),
            on_progress=lambda job: bar.update(task, completed=job.items_done),
        )


def _archive(store: PostgreSQLEventStore) -> dict[str, Any] | None:
    """TIME_BASED archival of the oldest month with events, shown step by step."""
    from pathlib import Path

    from evstore.core.archive import ArchivalPolicy, ArchivalStrategy, EventArchiver

    months = [p for p in store.list_partitions(exact=True) if p.row_count]
    if len(months) < 2:
        console.print("[dim]archive: fewer than two months hold events; nothing to archive[/]")
        return None
    oldest = months[0]
    now = datetime.now(UTC)
    # Whole months entirely older than the cutoff are archived: put the cutoff
    # inside the month after the oldest one, so that only the oldest is taken.
    retention_days = max(1, (now - oldest.range_end).days)
    from evstore.core.embedded import private_dir

    folder = private_dir(Path(store.settings.home) / "archive")
    archiver = EventArchiver(store)
    # The policy itself, not its name: the demo never reads the operator's
    # configuration file (one broken policy there must not stop it).
    policy = ArchivalPolicy(
        name="demo-oldest-month", strategy=ArchivalStrategy.TIME_BASED,
        retention_days=retention_days, target_url=folder.as_uri(),
    )
    preview = archiver.preview(policy, now=now)
    console.print(
        f"archive preview (dry run): {preview.events:,} events of {preview.streams:,} streams in "
        f"{', '.join(preview.partitions) or 'no partition'}, {human_bytes(preview.bytes)} in PostgreSQL",
        markup=False,
    )
    if not preview.events:
        return None
    with err_console.status(plain(f"archiving {oldest.month} to {folder}")):
        result = archiver.archive(policy)
    url = result.run.manifest_url
    assert url is not None
    after = {p.month for p in store.list_partitions()}
    console.print(
        f"archived {result.events:,} events into {result.segments_uploaded} segment(s), "
        f"{human_bytes(result.raw_bytes)} -> {human_bytes(result.stored_bytes)}; partition "
        f"{oldest.month} {'dropped' if oldest.month not in after else 'kept'}"
    )
    verified = archiver.verify(url)
    restored = archiver.restore(url)
    return {
        "month": oldest.month, "events": result.events, "ratio": result.compression_ratio,
        "verified": verified.ok, "restored": restored.events_restored,
        "present": restored.events_already_present, "url": url,
    }


def _head(store: PostgreSQLEventStore) -> Position | None:
    """The current head of the global order, so the read-back starts at this run."""
    checkpoint = None
    while True:
        page = store.read_all(after=checkpoint, limit=10_000)
        checkpoint = page.checkpoint
        if page.at_end:
            return checkpoint


def register(app: typer.Typer) -> None:
    app.command("demo")(handle_errors(demo))
