"""Background jobs for on-call engineers: ``evstore jobs list|show|requeue|cancel``,
``evstore replay`` to start a replay, ``evstore worker`` to run workers.

Dramatiq and Redis are imported inside the commands that send messages, so
``evstore --help`` and the read-only commands work without the workers extra.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from evstore.core.jobs.repository import Job, JobDetail, JobRepository

from .common import (
    console,
    err_console,
    handle_errors,
    open_store,
    print_json,
    settings,
    to_jsonable,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
STATUS_STYLE = {"succeeded": "green", "failed": "bold red", "cancelled": "yellow",
                "cancelling": "yellow", "running": "cyan", "queued": "blue", "retrying": "magenta",
                "pending": "dim", "starting": "dim"}


def _styled(status: str) -> str:
    style = STATUS_STYLE.get(status, "")
    return f"[{style}]{status}[/]" if style else status


def _seconds(td: Any) -> str:
    if td is None:
        return "-"
    total = int(td.total_seconds())
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}" if total >= 3600 \
        else f"{total // 60}:{total % 60:02d}"


def _job_json(job: Job) -> dict[str, Any]:
    out: dict[str, Any] = to_jsonable(job)
    eta = job.eta
    out["progress"] = {"rate_per_second": round(job.rate, 1),
                       "elapsed_seconds": round(job.elapsed.total_seconds(), 3),
                       "eta_seconds": None if eta is None else round(eta.total_seconds(), 1)}
    return out


@contextlib.contextmanager
def _broker() -> Iterator[Any]:
    """A broker on REDIS_URL, or on the embedded Redis (imports Dramatiq)."""
    from evstore.workers.broker import make_broker, redis_url
    from evstore.workers.logs import configure_logging

    configure_logging(default_level="WARNING")

    def announce(text: str) -> None:
        err_console.print(f"[dim]{text}[/]", highlight=False)

    with redis_url(settings(), announce=announce) as url:
        yield make_broker(url)


# -- evstore jobs ---------------------------------------------------------------

def list_jobs(
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind (replay, ...).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
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
        table.add_row(str(j.job_id), j.kind, _styled(j.status), f"{j.items_done:,}/{j.items_total:,}",
                      f"{j.items_failed:,}", batches, f"{j.rate:,.0f}", _seconds(j.elapsed),
                      j.created_at.strftime("%Y-%m-%d %H:%M:%S"), j.created_by or "")
    console.print(table)


def _detail_tables(detail: JobDetail) -> list[Any]:
    j = detail.job
    summary = Table.grid(padding=(0, 2))
    summary.add_row("job", f"{j.job_id} ({j.kind})")
    summary.add_row("status", _styled(j.status))
    summary.add_row("items", f"{j.items_done:,} done, {j.items_failed:,} failed, of {j.items_total:,}")
    summary.add_row("batches", f"{j.batches_succeeded} succeeded, {j.batches_failed} failed, "
                    f"{j.batches_running} running, {j.batches_cancelled} cancelled, "
                    f"of {j.batches_total}")
    eta = j.eta
    summary.add_row("rate", f"{j.rate:,.0f}/s, elapsed {_seconds(j.elapsed)}, "
                    f"ETA {_seconds(eta) if eta is not None else '-'}")
    shown = {k: v for k, v in j.params.items() if not k.startswith("_") and v is not None}
    summary.add_row("params", ", ".join(f"{k}={v}" for k, v in shown.items()))
    table = Table(title="batches", title_justify="left")
    for col in ("#", "status", "items", "attempts", "covers", "worker", "seconds", "error"):
        table.add_column(col, overflow="fold")
    for b in detail.batches:
        error = ""
        if b.last_error:
            error = (f"[red]{b.last_error}[/]" if b.status == "failed" else b.last_error)
            if b.error_item:
                error += f" [dim](item {b.error_item})[/]"
        table.add_row(str(b.number), _styled(b.status), f"{b.items_done:,}/{b.items_total:,}",
                      str(b.attempts), b.label, b.worker or "",
                      f"{b.duration:.2f}" if b.duration is not None else "", error)
    return [summary, table]


def show_job(
    job_id: Annotated[int, typer.Argument(help="The job's id (see 'evstore jobs list').")],
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
            _follow(repo, job_id)
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


def _follow(repo: JobRepository, job_id: int, poll: float = 0.5) -> Job:
    """A live progress bar (on stderr) until the job ends; Ctrl-C stops following only."""
    job = repo.get(job_id)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"))
    started_waiting = time.monotonic()
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(f"job {job_id} ({job.kind})", total=max(job.items_total, 1), info="")
        try:
            while True:
                eta = job.eta
                info = (f"{_styled(job.status)}  {job.rate:,.0f}/s  ETA "
                        f"{_seconds(eta) if eta is not None else '-'}  batches "
                        f"{job.batches_succeeded}/{job.batches_total}")
                if job.batches_failed:
                    info += f" [red]({job.batches_failed} failed)[/]"
                if job.status in ("queued", "starting") and time.monotonic() - started_waiting > 5:
                    info += "  [dim]waiting for workers: start some with 'evstore worker'[/]"
                progress.update(task, completed=job.items_done + job.items_failed, info=info)
                if job.finished:
                    return job
                time.sleep(poll)
                job = repo.get(job_id)
        except KeyboardInterrupt:
            err_console.print(f"stopped following; job {job_id} goes on")
            return job


def requeue_job(
    job_id: Annotated[int, typer.Argument(help="The job's id.")],
    batch: Annotated[int | None, typer.Option("--batch", help="Only this batch number.")] = None,
    include_cancelled: Annotated[bool, typer.Option(
        "--include-cancelled", help="Also resume cancelled batches.")] = False,
    stale: Annotated[bool, typer.Option(
        "--stale", help="Resend every unfinished batch no live worker holds (after losing Redis)."
    )] = False,
) -> None:
    """Send a job's failed batches (or one batch) to the workers again."""
    with open_store() as store, _broker() as broker:
        from evstore.workers.engine import JobEngine

        numbers = JobEngine(store, broker).requeue(job_id, batch, include_cancelled=include_cancelled,
                                                   stale=stale)
    if not numbers:
        console.print(f"job {job_id}: nothing to requeue (no failed batches)")
        return
    console.print(f"job {job_id}: requeued batch{'es' if len(numbers) > 1 else ''} "
                  f"{', '.join(map(str, numbers))}")


def cancel_job(job_id: Annotated[int, typer.Argument(help="The job's id.")]) -> None:
    """Cancel a job: batches not started are dropped; running ones finish."""
    with open_store() as store:
        repo = JobRepository(store)
        numbers = repo.cancel(job_id)
        job = repo.get(job_id)
    console.print(f"job {job_id}: cancelled {len(numbers)} batch(es); status {_styled(job.status)}"
                  + (f", {job.batches_running} still running" if job.batches_running else ""))


def job_metrics() -> None:
    """Job metrics in the Prometheus text format (jobs and batches by status, items done)."""
    from evstore.core.jobs.metrics import render_job_metrics

    with open_store() as store:
        text = render_job_metrics(store)
    typer.echo(text, nl=False)


def register(app: typer.Typer) -> None:
    from .replay_commands import replay, worker

    jobs_app = typer.Typer(help="Background jobs: list, show (--follow), requeue, cancel.",
                           no_args_is_help=True)
    jobs_app.command("list")(handle_errors(list_jobs))
    jobs_app.command("show")(handle_errors(show_job))
    jobs_app.command("requeue")(handle_errors(requeue_job))
    jobs_app.command("cancel")(handle_errors(cancel_job))
    jobs_app.command("metrics")(handle_errors(job_metrics))
    app.add_typer(jobs_app, name="jobs")
    app.command("replay")(handle_errors(replay))
    app.command("worker")(handle_errors(worker))

