"""Aggregate snapshots: ``evstore snapshots build`` (a sweep) and ``evstore snapshots stats``.

``build`` starts a ``snapshot_build`` job on the workers (Dramatiq over Redis);
``--in-process`` runs the same sweep here instead, with no workers needed.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from .common import (
    add_group,
    check_range,
    console,
    err_console,
    follow_job,
    human_bytes,
    open_broker,
    open_store,
    plain,
    print_json,
    to_jsonable,
)

Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


def stats(as_json: Json = False) -> None:
    """Snapshots per aggregate type: how many, sizes and compression, measured load costs."""
    from evstore.core.snapshots.stats import snapshot_stats

    with open_store() as store:
        rows = snapshot_stats(store)
    if as_json:
        print_json([{**to_jsonable(r), "compression_ratio": round(r.compression_ratio, 2)}
                    for r in rows])
        return
    if not rows:
        console.print("no aggregates yet")
        return
    table = Table(title="snapshots", title_justify="left")
    for col in ("aggregate type", "aggregates", "events", "snapshots", "snapshotted",
                "state size", "stored", "ratio", "codecs", "load ms/event", "newest (UTC)"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            plain(r.aggregate_type), f"{r.aggregates:,}", f"{r.events:,}", f"{r.snapshots:,}",
            f"{r.snapshotted_aggregates:,}", human_bytes(r.original_bytes),
            human_bytes(r.stored_bytes), f"{r.compression_ratio:.1f}x" if r.snapshots else "-",
            plain(", ".join(r.codecs) or "-"),
            f"{r.ms_per_event:.3f} (+{r.base_ms:.1f})" if r.ms_per_event is not None else "-",
            r.latest.strftime("%Y-%m-%d %H:%M:%S") if r.latest else "-",
        )
    console.print(table)


def _import(path: str) -> type[Any]:
    from evstore.core.snapshots.aggregate import import_class
    from evstore.workers.registry import no_implicit_cwd

    # From installed packages or PYTHONPATH, never a file that happens to lie
    # in the folder the command runs in (as the workers, docs/jobs.md).
    with no_implicit_cwd():
        cls: type[Any] = import_class(path)
    return cls


def build(
    aggregate_class: Annotated[str, typer.Argument(
        help="The aggregate class, 'package.module:Class' (importable here and on the workers).")],
    aggregate_type: Annotated[str | None, typer.Option(
        help="The events' aggregate type (default: the class's aggregate_type).")] = None,
    strategy: Annotated[str, typer.Option(
        help="event_count, time_based or adaptive.")] = "event_count",
    every: Annotated[int, typer.Option(help="event_count: events between snapshots.")] = 100,
    max_age: Annotated[float, typer.Option(
        help="time_based: seconds after which a snapshot is stale.")] = 3600.0,
    budget_ms: Annotated[float, typer.Option(help="adaptive: the load-time budget (ms).")] = 20.0,
    min_events: Annotated[int, typer.Option(help="Never snapshot shorter aggregates.")] = 10,
    codec: Annotated[str, typer.Option(help="Compression of the states.")] = "zstd",
    batch_size: Annotated[int, typer.Option(help="Aggregates per batch.")] = 100,
    in_process: Annotated[bool, typer.Option(
        "--in-process", help="Build here instead of on the workers.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what is due.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the job until it ends.")] = False,
    as_json: Json = False,
) -> None:
    """Snapshot the aggregates past their strategy's threshold."""
    from evstore.core.snapshots.policy import SnapshotConfig, plan_batches, run_sweep

    check_range("--every", every, minimum=1)
    check_range("--max-age", max_age, above=0)
    check_range("--budget-ms", budget_ms, above=0)
    check_range("--min-events", min_events, minimum=0)
    check_range("--batch-size", batch_size, minimum=1, maximum=100_000)

    cls = _import(aggregate_class)
    config = SnapshotConfig(strategy=strategy.strip().lower(), every_n_events=every,
                            max_age_seconds=max_age, load_budget_ms=budget_ms,
                            min_events=min_events, compression=codec)
    with open_store() as store:
        if dry_run:
            batches = plan_batches(store, cls, config, batch_size, aggregate_type)
            due = sum(b.count for b in batches)
            if as_json:
                print_json({"due": due, "batches": [to_jsonable(b) for b in batches]})
            else:
                console.print(f"{due:,} aggregates due in {len(batches)} batch(es)")
            return
        if in_process:
            report = run_sweep(store, cls, config, batch_size, aggregate_type)
            if as_json:
                print_json(report)
            else:
                console.print(
                    f"built {report.built:,} snapshot(s), skipped {report.skipped:,}; "
                    f"{human_bytes(report.original_bytes)} of state stored in "
                    f"{human_bytes(report.stored_bytes)}")
            return
        from evstore.workers.engine import JobEngine
        from evstore.workers.snapshot_jobs import start_snapshot_build

        with open_broker() as broker:
            engine = JobEngine(store, broker)
            job_id = start_snapshot_build(engine, aggregate_class, config, batch_size=batch_size,
                                          aggregate_type=aggregate_type, created_by="evstore")
            job = engine.get(job_id)
            if as_json and not wait:
                print_json({"job_id": job_id, "aggregates_due": job.items_total,
                            "batches": job.batches_total})
                return
            err_console.print(f"job {job_id}: {job.items_total:,} aggregates due in "
                              f"{job.batches_total} batch(es)")
            if wait:
                job = follow_job(engine.repo, job_id)
                if as_json:
                    print_json(job)
                else:
                    console.print(f"job {job_id} {job.status}")
            else:
                console.print(f"job {job_id} started; follow it with 'evstore jobs show {job_id} "
                              "--follow'")


def register(app: typer.Typer) -> None:
    add_group(app, "snapshots", "Aggregate snapshots: build them (a sweep), show statistics.",
              {"build": build, "stats": stats})
