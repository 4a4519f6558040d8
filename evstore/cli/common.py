"""What every command shares: settings, the store, output, and error handling.

Expected failures (bad input, a conflict, a server that is down) print one
line on stderr and exit with a code that says what kind of failure it was;
only a bug shows a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from datetime import date, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import typer
from rich.console import Console

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
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


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
        f"[dim]DATABASE_URL not set: using the embedded PostgreSQL in {server.pgdata}[/]",
        highlight=False,
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
