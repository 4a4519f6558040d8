"""The ``evstore`` command: one Typer application, commands grouped by module.

Each module of ``COMMAND_MODULES`` has a ``register(app)`` function that adds
its commands. Modules import their heavy dependencies (Dramatiq, fsspec, …)
inside the commands, so ``evstore --help`` works with the core install alone.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Annotated

import typer

from evstore.core.embedded import PRIVATE_UMASK

# The order is the order of ``evstore --help``: commands first, then groups.
COMMAND_MODULES = [
    "evstore.cli.store",
    "evstore.cli.demo",
    "evstore.cli.replay",
    "evstore.cli.jobs",
    "evstore.cli.archive",
    "evstore.cli.scheduler",
    "evstore.cli.consumers",
    "evstore.cli.snapshots",
    "evstore.cli.keys",
    "evstore.cli.roles",
    "evstore.cli.serve",
    "evstore.cli.privacy",
    "evstore.cli.query",
]

app = typer.Typer(
    name="evstore",
    help=(
        "Operate an evstore event store: append and read events, check integrity and "
        "health, manage partitions, and run the demo.\n\n"
        "Configuration comes from the environment: DATABASE_URL (without it, an embedded "
        "PostgreSQL under EVSTORE_HOME is used), REDIS_URL, EVENT_STORE_SCHEMA, "
        "EVENT_STORE_COMPRESSION, EVENT_STORE_BATCH_SIZE, EVENT_STORE_CACHE_TTL, "
        "EVENT_STORE_ENCRYPTION, EVENT_STORE_RETENTION_DAYS, EVSTORE_SECRET_KEY.\n\n"
        "Archive policies and schedules come from the file named by --config or "
        "EVSTORE_CONFIG, else $EVSTORE_HOME/evstore.toml (never the current folder).\n\n"
        "Exit codes: 0 ok, 1 a check failed, 2 bad input, 3 service unavailable, "
        "4 version conflict, 5 integrity failure."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode="rich",
)


@app.callback()
def _options(
    config: Annotated[Path | None, typer.Option(
        "--config", metavar="FILE", show_default=False,
        help="The configuration file (archive policies, schedules, storage options); "
             "sets EVSTORE_CONFIG for this command and the processes it starts.",
    )] = None,
) -> None:
    # What the command and the processes it starts create (embedded servers'
    # data, logs, archives, keys) is the user's alone: 0700 folders, 0600 files.
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)
    if config is not None:
        os.environ["EVSTORE_CONFIG"] = str(config.absolute())


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    app()
