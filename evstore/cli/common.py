"""What every command shares: settings, the store, the broker, output, and error handling.

Expected failures (bad input, a conflict, a server that is down) print one
line on stderr and exit with a code that says what kind of failure it was;
only a bug shows a traceback.

Command modules import helpers from here only, never from one another, so
each module registers its own commands and no two of them import each other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape as escape  # for the command modules: stored text in markup
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text

from evstore.core.config import Settings, load_settings
from evstore.core.errors import (
    ConcurrencyError,
    ConfigurationError,
    EventStoreError,
    EventValidationError,
    IntegrityError,
    SchemaNotInitializedError,
    StoreUnavailableError,
    UnknownEventTypeError,
)
from evstore.core.jobs.repository import Job, JobRepository

console = Console()
err_console = Console(stderr=True)

# Exit codes: 0 ok, 1 a check failed (verify, health), 2 bad usage or input,
# 3 a service is unavailable, 4 a conflict, 5 data integrity failure.
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_CONFLICT = 4
EXIT_INTEGRITY = 5

F = TypeVar("F", bound=Callable[..., Any])


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, ConfigurationError | EventValidationError | UnknownEventTypeError | ValueError):
        return EXIT_USAGE
    if isinstance(exc, StoreUnavailableError | SchemaNotInitializedError):
        return EXIT_UNAVAILABLE
    if isinstance(exc, ConcurrencyError):
        return EXIT_CONFLICT
    if isinstance(exc, IntegrityError):
        return EXIT_INTEGRITY
    return EXIT_FAILED


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """Print ``error: message`` (as text: it may quote stored data) and the exit to raise."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False,
                      soft_wrap=True)
    return typer.Exit(code)


class OptionError(ValueError):
    """A command-line value out of its range (exit 2, one line)."""


def check_range(
    option: str, value: float | None, *, minimum: float | None = None,
    maximum: float | None = None, above: float | None = None,
) -> None:
    """Refuse ``value`` of ``option`` outside its range; None (not given) passes.

    Click's own range checks print a usage box; this one line names the option,
    the range and the value, like every other bad input of the command.
    """
    if value is None:
        return
    if minimum is not None and value < minimum:
        raise OptionError(f"{option} must be at least {minimum:g} (got {value:g})")
    if above is not None and value <= above:
        raise OptionError(f"{option} must be more than {above:g} (got {value:g})")
    if maximum is not None and value > maximum:
        raise OptionError(f"{option} must be at most {maximum:g} (got {value:g})")


def plain(value: object) -> Text:
    """Stored data (stream ids, event types, payloads, names) as text, never Rich markup."""
    return Text(str(value))


def handle_errors(func: F) -> F:
    """Turn expected evstore errors into a one-line message and an exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (EventStoreError, ValueError) as exc:
            raise fail(str(exc), exit_code_for(exc)) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def add_group(
    app: typer.Typer,
    name: str,
    help: str,
    commands: Mapping[str, Callable[..., Any]],
    wrap: Callable[[Any], Any] = handle_errors,
    **options: Any,
) -> typer.Typer:
    """A sub-command group ``evstore NAME``: each command wrapped in ``wrap``
    (error handling); without a sub-command it shows its help unless ``options`` say otherwise."""
    group = typer.Typer(help=help, **{"no_args_is_help": True, **options})
    for command, func in commands.items():
        group.command(command)(wrap(func))
    app.add_typer(group, name=name)
    return group


def settings() -> Settings:
    return load_settings()


@contextlib.contextmanager
def database_url(cfg: Settings | None = None) -> Iterator[str]:
    """DATABASE_URL, or an embedded PostgreSQL kept under EVSTORE_HOME."""
    cfg = cfg or settings()
    if cfg.database_url:
        yield cfg.database_url
        return
    from evstore.core.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(Path(cfg.home) / "pgdata")
    err_console.print(
        f"DATABASE_URL not set: using the embedded PostgreSQL in {server.pgdata}",
        style="dim", highlight=False, markup=False,
    )
    with server:
        yield server.url


@contextlib.contextmanager
def open_store(initialize: bool = False, check_schema: bool = True) -> Iterator[Any]:
    """A PostgreSQLEventStore on the configured (or embedded) database.

    Unless asked to initialise it (or not to check), a schema that is missing
    or behind this version's migrations is refused with the command to run.
    """
    from evstore.core.migrations import latest_version
    from evstore.core.store.postgres import PostgreSQLEventStore

    cfg = settings()
    with database_url(cfg) as url, PostgreSQLEventStore(url, settings=cfg) as store:
        if initialize:
            store.initialize_schema()
        elif check_schema:
            version, latest = store.schema_version(), latest_version()
            if version < latest:
                state = "does not exist" if version == 0 else f"is at migration {version} of {latest}"
                raise SchemaNotInitializedError(
                    f"the event store schema {store.schema!r} {state}: run 'evstore init'"
                )
        yield store


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if hasattr(value, "value") and hasattr(value, "name"):  # enums
        return value.value
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


# -- jobs: the broker, handler modules, a job's status and progress ------------

STATUS_STYLE = {"succeeded": "green", "failed": "bold red", "cancelled": "yellow",
                "cancelling": "yellow", "running": "cyan", "queued": "blue", "retrying": "magenta",
                "pending": "dim", "starting": "dim"}


def styled_status(status: str) -> str:
    style = STATUS_STYLE.get(status, "")
    return f"[{style}]{status}[/]" if style else status


def clock(td: Any) -> str:
    """A duration as m:ss or h:mm:ss ("-" for none)."""
    if td is None:
        return "-"
    total = int(td.total_seconds())
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}" if total >= 3600 \
        else f"{total // 60}:{total % 60:02d}"


@contextlib.contextmanager
def open_broker() -> Iterator[Any]:
    """A broker on REDIS_URL, or on the embedded Redis (imports Dramatiq)."""
    from evstore.workers.broker import close_broker, make_broker, redis_url
    from evstore.workers.logs import configure_logging

    configure_logging(default_level="WARNING")

    def announce(text: str) -> None:
        err_console.print(text, style="dim", highlight=False, markup=False)

    # Closed before the embedded Redis is left, whatever the exit: the server
    # stops only when its last client has gone.
    with redis_url(settings(), announce=announce) as url:
        broker = make_broker(url)
        try:
            yield broker
        finally:
            close_broker(broker)


def follow_job(repo: JobRepository, job_id: int, poll: float = 0.5) -> Job:
    """A live progress bar (on stderr) until the job ends; Ctrl-C stops following only."""
    job = repo.get(job_id)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"))
    started_waiting = time.monotonic()
    with Progress(*columns, console=err_console, transient=False) as progress:
        task = progress.add_task(f"job {job_id} ({escape(job.kind)})", total=max(job.items_total, 1), info="")
        try:
            while True:
                eta = job.eta
                info = (f"{styled_status(job.status)}  {job.rate:,.0f}/s  ETA "
                        f"{clock(eta) if eta is not None else '-'}  batches "
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
