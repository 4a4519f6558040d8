"""``evstore roles``: the least-privilege PostgreSQL roles of the store's schema.

Without ``--apply`` it prints the SQL (no database needed) for a DBA to read
and run with ``psql -f``; with ``--apply`` it runs it on DATABASE_URL, which
must connect as the schema's owner role (or a superuser) with CREATEROLE while
roles are missing. Passwords are read from files (never from the command line,
where ``ps`` shows them) and only their SCRAM verifiers are sent or printed.
See docs/security.md for the roles, their grants and the deployment.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .common import database_url, handle_errors, print_json, settings

app = typer.Typer(
    name="roles",
    help=(
        "Print (or --apply) the SQL that creates the least-privilege roles of the store's "
        "schema: <prefix>_owner, _writer, _reader, _worker, _privacy (see docs/security.md)."
    ),
    no_args_is_help=False,
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    subcommand_metavar="",
)


def _read_passwords(specs: list[str]) -> dict[str, str]:
    """``COMPONENT=PATH`` pairs to {component: password}; a file's last newline is not part of it."""
    from evstore.core.errors import ConfigurationError
    from evstore.core.roles import COMPONENTS

    out: dict[str, str] = {}
    for spec in specs:
        component, sep, path = spec.partition("=")
        if not sep or not component or not path:
            raise ConfigurationError(
                f"--password-file takes COMPONENT=PATH (e.g. writer=/run/secrets/writer); "
                f"got {spec[:60]!r}"
            )
        component = component.strip()
        if component not in COMPONENTS:
            raise ConfigurationError(
                f"unknown component {component[:40]!r} in --password-file "
                f"(known: {', '.join(COMPONENTS)})"
            )
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the {component} password file {path}: {exc.strerror}"
            ) from None
        password = text.removesuffix("\n").removesuffix("\r")
        if not password:
            raise ConfigurationError(f"the {component} password file {path} is empty")
        out[component] = password
    return out


@app.callback()
@handle_errors
def roles(
    apply: Annotated[bool, typer.Option(
        "--apply", help="Run the SQL on DATABASE_URL instead of printing it.")] = False,
    prefix: Annotated[str | None, typer.Option(
        "--prefix", help="Role names are <prefix>_<component> (default: the schema name).",
        show_default=False)] = None,
    password_file: Annotated[list[str] | None, typer.Option(
        "--password-file", metavar="COMPONENT=PATH",
        help="A file holding a role's password (repeat per component: owner, writer, reader, "
             "worker, privacy). Roles without one get no password.")] = None,
    login: Annotated[bool, typer.Option(
        "--login/--no-login",
        help="Create login roles, or group roles to grant to login users of your own.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Print (or apply) the roles and grants of the store's schema."""
    from evstore.core.roles import apply_roles_at, role_names, roles_script, script_text

    cfg = settings()
    schema = cfg.schema_name
    chosen = prefix or schema
    passwords = _read_passwords(password_file or [])
    statements = roles_script(schema, chosen, passwords, login)
    names = role_names(chosen)
    if apply:
        with database_url(cfg) as url:
            apply_roles_at(url, schema, chosen, passwords, login)
        if as_json:
            print_json({"applied": True, "schema": schema, "roles": names})
        else:
            sys.stdout.write(f"roles of schema {schema} applied: "
                             + ", ".join(names.values()) + "\n")
        return
    if as_json:
        print_json({"schema": schema, "roles": names,
                    "statements": [{"purpose": s.purpose, "sql": s.sql} for s in statements]})
    else:
        sys.stdout.write(script_text(statements))


def register(parent: typer.Typer) -> None:
    """Add ``evstore roles`` to the command (for evstore/cli/app.py)."""
    parent.add_typer(app, name="roles")


if __name__ == "__main__":
    app()
