"""``evstore replay``: start a replay job; with --wait, follow it and print the result.

The workers (``evstore worker``, jobs.py) deliver the selected events to the
handlers; Dramatiq is imported inside the command.
"""

from __future__ import annotations

import getpass
import socket
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from evstore.core.errors import ConfigurationError
from evstore.core.jobs.repository import JobRepository

from .common import (
    EXIT_FAILED,
    console,
    follow_job,
    handle_errors,
    open_broker,
    open_store,
    print_json,
    styled_status,
)


def _parse_time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"{option}: {text!r} is not an ISO 8601 time such as 2024-05-01 or 2024-05-01T12:00:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _opt(*names: str, help: str, **bounds: Any) -> Any:
    return typer.Option(*names, help=help, **bounds)


# Out of range is a usage error (exit 2), never a traceback or a query error.
MAX_POSITION = 2**63 - 1
MAX_BATCH_SIZE = 1_000_000


Handler = Annotated[list[str] | None, _opt(
    "--handler", "-H", help="A handler to deliver to (repeat); default: every registered handler.")]
HandlerModules = Annotated[list[str] | None, _opt(
    "--handlers", help="A module that registers handlers (dotted path; repeat). "
    "Also EVSTORE_HANDLER_MODULES.")]
FromPosition = Annotated[int | None, _opt(help="First global position (inclusive).", min=0,
                                          max=MAX_POSITION)]
ToPosition = Annotated[int | None, _opt(help="Last global position (inclusive).", min=0,
                                        max=MAX_POSITION)]
FromTime = Annotated[str | None, _opt(
    help="Events created at or after this ISO time (UTC if no zone).")]
ToTime = Annotated[str | None, _opt(help="Events created before this ISO time.")]
AggregateIds = Annotated[list[str] | None, _opt(
    "--aggregate-id", help="Only these aggregate ids (repeat).")]
AggregateTypes = Annotated[list[str] | None, _opt(
    "--aggregate-type", help="Only these aggregate types (repeat).")]
EventTypes = Annotated[list[str] | None, _opt("--event-type", help="Only these event types (repeat).")]
BatchSize = Annotated[int | None, _opt(
    help="Events per batch (whole streams); default EVENT_STORE_BATCH_SIZE.", min=1,
    max=MAX_BATCH_SIZE)]
StopOnError = Annotated[bool, _opt(
    "--stop-on-error", help="A failed batch cancels the batches not started yet.")]
Wait = Annotated[bool, _opt("--wait", help="Show a progress bar and the result when it ends.")]
Timeout = Annotated[float | None, _opt(help="With --wait: give up waiting after this many seconds.",
                                       min=0)]
Json = Annotated[bool, _opt("--json", help="Print JSON for scripts.")]


def replay(
    handler: Handler = None,
    handlers: HandlerModules = None,
    from_position: FromPosition = None,
    to_position: ToPosition = None,
    from_time: FromTime = None,
    to_time: ToTime = None,
    aggregate_id: AggregateIds = None,
    aggregate_type: AggregateTypes = None,
    event_type: EventTypes = None,
    batch_size: BatchSize = None,
    stop_on_error: StopOnError = False,
    wait: Wait = False,
    timeout: Timeout = None,
    as_json: Json = False,
) -> None:
    """Start a replay job: the workers deliver the selected events to the handlers."""
    from evstore.workers.registry import load_configured
    from evstore.workers.replay import EventReplayService, ReplayConfig

    load_configured(extra=handlers or ())  # never from the current folder
    config = ReplayConfig(
        from_timestamp=_parse_time(from_time, "--from-time"),
        to_timestamp=_parse_time(to_time, "--to-time"),
        from_position=from_position, to_position=to_position, aggregate_ids=aggregate_id,
        aggregate_types=aggregate_type, event_types=event_type, batch_size=batch_size,
        handler_names=handler, stop_on_error=stop_on_error,
    )
    with open_store() as store, open_broker() as broker:
        service = EventReplayService(store, broker)
        job_id = service.start(config, created_by=f"{getpass.getuser()}@{socket.gethostname()}")
        job = JobRepository(store).get(job_id)
        if not wait:
            if as_json:
                print_json({"job_id": job_id, "events": job.items_total,
                            "batches": job.batches_total, "status": job.status})
            else:
                console.print(f"started replay job [bold]{job_id}[/]: {job.items_total:,} events "
                              f"in {job.batches_total} batches; follow it with "
                              f"'evstore jobs show {job_id} --follow'")
            return
        if timeout is None and not as_json:
            follow_job(JobRepository(store), job_id)
        result = service.wait(job_id, timeout=timeout)
    if as_json:
        print_json(result)
    else:
        _print_result(result)
    if result.status != "succeeded":
        raise typer.Exit(EXIT_FAILED)


def _print_result(result: Any) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_row("replay job", str(result.job_id))
    table.add_row("status", styled_status(result.status))
    table.add_row("events", f"{result.successful_events:,} delivered, {result.failed_events:,} "
                  f"failed, of {result.total_events:,}")
    table.add_row("duration", f"{result.duration:.2f} s ({result.events_per_second:,.0f} events/s)")
    for name, count in sorted(result.handler_counts.items()):
        table.add_row(f"handler {escape(name)}", f"{count:,} events")
    for err in result.errors:
        table.add_row(f"batch {err.batch}", f"[red]{escape(err.error)}[/] (event {err.event_id}, "
                      f"{err.attempts} attempts)")
    console.print(table)
    if result.errors:
        console.print(f"fix the cause, then: evstore jobs requeue {result.job_id}")


def register(app: typer.Typer) -> None:
    app.command("replay")(handle_errors(replay))
