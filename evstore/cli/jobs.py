"""Background jobs for on-call engineers: ``evstore jobs list|show|requeue|cancel|metrics``
and ``evstore worker`` to run workers (``evstore replay`` starts a replay: replay.py).

Dramatiq and Redis are imported inside the commands that send messages, so
``evstore --help`` and the read-only commands work without the workers extra.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from evstore.core.errors import SchemaNotInitializedError
from evstore.core.jobs.repository import MAX_LIST_LIMIT, Job, JobDetail, JobRepository

from .common import (
    EXIT_FAILED,
    add_group,
    clock,
    console,
    database_url,
    err_console,
    follow_job,
    handle_errors,
    open_broker,
    open_store,
    print_json,
    settings,
    styled_status,
    to_jsonable,
)
from .serve import HttpHost, HttpPort, ops_started, start_ops

# Bounds of the numeric options: out of range is a usage error (exit 2), never a traceback.
MAX_ID = 2**63 - 1  # bigint
MAX_BATCH = 2**31 - 1  # integer
MAX_PROCESSES = 256
MAX_THREADS = 200  # each thread holds up to two database connections
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
JobId = Annotated[int, typer.Argument(min=1, max=MAX_ID, help="The job's id (see 'evstore jobs list').")]


def _job_json(job: Job) -> dict[str, Any]:
    out: dict[str, Any] = to_jsonable(job)
    eta = job.eta
    out["progress"] = {"rate_per_second": round(job.rate, 1),
                       "elapsed_seconds": round(job.elapsed.total_seconds(), 3),
                       "eta_seconds": None if eta is None else round(eta.total_seconds(), 1)}
    return out


# -- evstore jobs ---------------------------------------------------------------

def list_jobs(
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind (replay, ...).")] = None,
    limit: Annotated[int, typer.Option(
        min=1, max=MAX_LIST_LIMIT, help=f"At most this many, newest first (1-{MAX_LIST_LIMIT}).")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    with open_store() as store:
        jobs = JobRepository(store).list_jobs(status=status, kind=kind, limit=limit)
    if as_json:
        print_json([_job_json(j) for j in jobs])
        return
    if not jobs:
        console.print("no jobs" + (" matching the filters" if status or kind else ""))
        return
    table = Table(title="jobs", title_justify="left")
    for col in ("id", "kind", "status", "done", "failed", "batches", "rate/s", "elapsed",
                "created (UTC)", "by"):
        table.add_column(col, overflow="fold")
    for j in jobs:
        batches = f"{j.batches_succeeded}/{j.batches_total}"
        if j.batches_failed:
            batches += f" ({j.batches_failed} failed)"
        table.add_row(str(j.job_id), j.kind, styled_status(j.status), f"{j.items_done:,}/{j.items_total:,}",
                      f"{j.items_failed:,}", batches, f"{j.rate:,.0f}", clock(j.elapsed),
                      j.created_at.strftime("%Y-%m-%d %H:%M:%S"), escape(j.created_by or ""))
    console.print(table)


def _detail_tables(detail: JobDetail) -> list[Any]:
    j = detail.job
    summary = Table.grid(padding=(0, 2))
    summary.add_row("job", f"{j.job_id} ({j.kind})")
    summary.add_row("status", styled_status(j.status))
    summary.add_row("items", f"{j.items_done:,} done, {j.items_failed:,} failed, of {j.items_total:,}")
    summary.add_row("batches", f"{j.batches_succeeded} succeeded, {j.batches_failed} failed, "
                    f"{j.batches_running} running, {j.batches_cancelled} cancelled, "
                    f"of {j.batches_total}")
    eta = j.eta
    summary.add_row("rate", f"{j.rate:,.0f}/s, elapsed {clock(j.elapsed)}, "
                    f"ETA {clock(eta) if eta is not None else '-'}")
    shown = {k: v for k, v in j.params.items() if not k.startswith("_") and v is not None}
    summary.add_row("params", escape(", ".join(f"{k}={v}" for k, v in shown.items())))
    table = Table(title="batches", title_justify="left")
    for col in ("#", "status", "items", "attempts", "covers", "worker", "seconds", "error"):
        table.add_column(col, overflow="fold")
    for b in detail.batches:
        error = ""
        if b.last_error:
            text = escape(b.last_error)  # stored text, never markup
            error = f"[red]{text}[/]" if b.status == "failed" else text
            if b.error_item:
                error += f" [dim](item {escape(b.error_item)})[/]"
        table.add_row(str(b.number), styled_status(b.status), f"{b.items_done:,}/{b.items_total:,}",
                      str(b.attempts), escape(b.label), escape(b.worker or ""),
                      f"{b.duration:.2f}" if b.duration is not None else "", error)
    return [summary, table]


def show_job(
    job_id: JobId,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Show a live progress bar until the job ends.")] = False,
    tracebacks: Annotated[bool, typer.Option(
        "--tracebacks", help="Print the failed batches' tracebacks.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """A job with its batches and errors; --follow for a live progress bar."""
    with open_store() as store:
        repo = JobRepository(store)
        if follow:
            follow_job(repo, job_id)
        detail = repo.detail(job_id)
    if as_json:
        out = to_jsonable(detail)
        out["job"] = _job_json(detail.job)
        print_json(out)
        return
    for part in _detail_tables(detail):
        console.print(part)
    if tracebacks:
        for b in detail.batches:
            if b.status == "failed" and b.error_traceback:
                console.rule(f"batch {b.number}")
                console.print(b.error_traceback, highlight=False, markup=False)


def requeue_job(
    job_id: JobId,
    batch: Annotated[int | None, typer.Option(
        "--batch", min=1, max=MAX_BATCH, help="Only this batch number.")] = None,
    include_cancelled: Annotated[bool, typer.Option(
        "--include-cancelled", help="Also resume cancelled batches.")] = False,
    stale: Annotated[bool, typer.Option(
        "--stale", help="Resend every unfinished batch no live worker holds (after losing Redis)."
    )] = False,
) -> None:
    """Send a job's failed batches (or one batch) to the workers again."""
    with open_store() as store, open_broker() as broker:
        from evstore.workers.engine import JobEngine

        numbers = JobEngine(store, broker).requeue(job_id, batch, include_cancelled=include_cancelled,
                                                   stale=stale)
    if not numbers:
        console.print(f"job {job_id}: nothing to requeue (no failed batches)")
        return
    console.print(f"job {job_id}: requeued batch{'es' if len(numbers) > 1 else ''} "
                  f"{', '.join(map(str, numbers))}")


def cancel_job(job_id: JobId) -> None:
    """Cancel a job: batches not started are dropped; running ones finish."""
    with open_store() as store:
        repo = JobRepository(store)
        numbers = repo.cancel(job_id)
        job = repo.get(job_id)
    console.print(f"job {job_id}: cancelled {len(numbers)} batch(es); status {styled_status(job.status)}"
                  + (f", {job.batches_running} still running" if job.batches_running else ""))


def job_metrics() -> None:
    """Job metrics in the Prometheus text format (jobs and batches by status, items done)."""
    from evstore.core.jobs.metrics import render_job_metrics

    with open_store() as store:
        text = render_job_metrics(store)
    typer.echo(text, nl=False)


# -- evstore worker -------------------------------------------------------------

Processes = Annotated[int, typer.Option(
    "--processes", "-p", min=1, max=MAX_PROCESSES, help=f"Worker processes (1-{MAX_PROCESSES}).")]
Threads = Annotated[int, typer.Option(
    "--threads", "-t", min=1, max=MAX_THREADS,
    help=f"Threads per process (batches run at once; 1-{MAX_THREADS}).")]
WorkerModules = Annotated[list[str] | None, typer.Option(
    "--handlers", help="A module that registers replay handlers (dotted path; repeat).")]
ShutdownTimeout = Annotated[float, typer.Option(
    min=0, max=86_400, help="Seconds running batches get to finish on Ctrl-C / SIGTERM.")]
PrintCommand = Annotated[bool, typer.Option(
    "--print-command", help="Print the equivalent `dramatiq` command line and exit.")]


def worker(
    processes: Processes = 2,
    threads: Threads = 4,
    handlers: WorkerModules = None,
    shutdown_timeout: ShutdownTimeout = 60.0,
    print_command: PrintCommand = False,
    http_port: HttpPort = None,
    http_host: HttpHost = None,
) -> None:
    """Run Dramatiq workers for evstore's jobs (any number, on any machine)."""
    from evstore.workers.pool import WorkerPool, dramatiq_command
    from evstore.workers.settings import load_job_settings

    modules = list(dict.fromkeys([*load_job_settings().modules, *(handlers or [])]))
    if print_command:
        env = "dramatiq_worker_timeout=200 "  # as WorkerPool sets it (workers/pool.py worker_env)
        env += f"EVSTORE_HANDLER_MODULES={','.join(modules)} " if modules else ""
        command = dramatiq_command(processes, threads)
        console.print(env + " ".join(["python", *command[1:]]), highlight=False, soft_wrap=True,
                      markup=False)
        return
    from evstore.workers.registry import load_configured

    ops = start_ops("worker", http_host, http_port, needs_redis=True, worker_capacity=processes * threads)
    load_configured(extra=modules)  # fail here, not in every worker, on a module that does not import
    cfg = settings()
    with database_url(cfg) as db_url:
        _check_schema(db_url)
        from evstore.workers.broker import redis_url

        with redis_url(cfg, announce=lambda t: err_console.print(f"[dim]{t}[/]")) as r_url:
            pool = WorkerPool(db_url, r_url, processes=processes, threads=threads,
                              handler_modules=modules, inherit_output=True)
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            err_console.print(f"[dim]{processes} worker process(es) x {threads} threads; "
                              f"handler modules: {', '.join(modules) or 'none'}; Ctrl-C to stop[/]")
            pool.start()
            ops_started(ops, db_url, r_url, alive=pool.alive)
            while pool.alive() and not stop.wait(0.5):
                pass
            code = pool.stop(timeout=shutdown_timeout)
    if code not in (0, None, -signal.SIGTERM) and not stop.is_set():
        raise typer.Exit(code if code and code > 0 else EXIT_FAILED)


def _check_schema(url: str) -> None:
    from evstore.core.migrations import latest_version
    from evstore.core.store.postgres import PostgreSQLEventStore

    with PostgreSQLEventStore(url, settings=settings()) as store:
        if store.schema_version() < latest_version():
            raise SchemaNotInitializedError(
                f"the schema {store.schema!r} is not at the latest migration: run 'evstore init'"
            )


def register(app: typer.Typer) -> None:
    add_group(app, "jobs", "Background jobs: list, show (--follow), requeue, cancel.",
              {"list": list_jobs, "show": show_job, "requeue": requeue_job, "cancel": cancel_job,
               "metrics": job_metrics})
    app.command("worker")(handle_errors(worker))
