"""Least-privilege PostgreSQL roles for one store's schema (``evstore roles``).

One application credential for everything means a leaked credential is
everything: rewriting history, writing job rows that workers act on, reading
every e-mail. So each component gets a role holding what its statements in
``core/sql/*.sql`` need and nothing more (see docs/security.md):

- **owner** owns the schema and its objects and runs migrations (``evstore
  init``); also restores archives and drops archived partitions;
- **writer** appends and reads (a new month's partition comes from the owner's
  ``SECURITY DEFINER`` function ``create_month_partition``);
- **reader** reads, and keeps its checkpoints and consumer-group leases;
- **worker** runs jobs and the scheduler: the job tables, snapshots, archive
  runs, reading events and deleting archived ones;
- **privacy** (the privacy operator) forgets a data subject: rewrites or
  deletes the subject's events under the store's privileged path.

Role names derive from a prefix (the schema name by default): roles are
cluster-wide, so two databases whose stores share a schema name need different
prefixes. Passwords are sent and printed only as SCRAM-SHA-256 verifiers, so
the clear password never reaches the server, its logs or the output.

The script is idempotent: roles are created when missing, and every grant is
first revoked, so applying it again converges on exactly these grants.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql as pgsql
from psycopg.rows import dict_row

from .db import redact
from .errors import (
    ConfigurationError,
    EventStoreError,
    SchemaNotInitializedError,
    StoreUnavailableError,
)
from .migrations import current_version, latest_version
from .sql import load

COMPONENTS = ("owner", "writer", "reader", "worker", "privacy")
# The roles whose privileges the script sets (the owner has its by ownership).
GRANTED = ("writer", "reader", "worker", "privacy")
_PREFIX = re.compile(r"[a-z_][a-z0-9_]*")
_MAX_NAME = 63  # PostgreSQL's identifier length
_SCRAM_ITERATIONS = 4096


class RolesError(EventStoreError):
    """The roles could not be applied (the connecting user may not, or a role is unsafe)."""


@dataclass(frozen=True)
class Statement:
    """One step of the script: what it is for and its SQL text."""

    purpose: str
    sql: str


def role_names(prefix: str) -> dict[str, str]:
    """The role of each component: ``<prefix>_owner``, ``<prefix>_writer``, …"""
    if not _PREFIX.fullmatch(prefix):
        raise ConfigurationError(
            "the role prefix must be a lower-case SQL identifier (letters, digits, "
            f"underscores, not starting with a digit); got {prefix[:40]!r}"
        )
    longest = max(len(c) for c in COMPONENTS) + 1
    if len(prefix) + longest > _MAX_NAME:
        raise ConfigurationError(
            f"the role prefix is {len(prefix)} characters; at most {_MAX_NAME - longest} "
            "leave room for the component suffix"
        )
    return {component: f"{prefix}_{component}" for component in COMPONENTS}


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677).

    ``ALTER ROLE … PASSWORD`` accepts it as is, so the password itself is never
    sent, logged by the server, or printed.
    """
    if not password:
        raise ConfigurationError("a role password must not be empty")
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _SCRAM_ITERATIONS)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${_SCRAM_ITERATIONS}:{b64(salt).decode()}"
            f"${b64(stored_key).decode()}:{b64(server_key).decode()}")


def _ident(name: str) -> str:
    return pgsql.Identifier(name).as_string(None)


def _literal(value: str) -> str:
    return pgsql.Literal(value).as_string(None)


def roles_script(
    schema: str,
    prefix: str | None = None,
    passwords: Mapping[str, str] | None = None,
    login: bool = True,
) -> list[Statement]:
    """The statements that create the roles of ``schema`` and grant them their privileges.

    ``passwords`` maps a component (``writer``, …) to its password; components
    without one get none (set it later, or authenticate otherwise).
    """
    names = role_names(prefix or schema)
    passwords = dict(passwords or {})
    unknown = sorted(set(passwords) - set(COMPONENTS))
    if unknown:
        raise ConfigurationError(
            f"unknown component {unknown[0]!r} for a password (known: {', '.join(COMPONENTS)})"
        )
    quoted = {c: _ident(n) for c, n in names.items()}
    granted = ", ".join(quoted[c] for c in GRANTED)
    out = []
    for component in COMPONENTS:
        out.append(Statement(f"create the {component} role", load(
            "roles", "create_role", rolname=_literal(names[component]), role=quoted[component],
            options="LOGIN" if login else "NOLOGIN",
        )))
        if component in passwords:
            out.append(Statement(f"set the {component} password", load(
                "roles", "set_password", role=quoted[component],
                verifier=_literal(scram_verifier(passwords[component])),
            )))
    out.append(Statement("revoke everything, then USAGE on the schema",
                         load("roles", "revoke_all", schema, roles=granted)))
    out.append(Statement("CONNECT on the database, TEMP for the worker",
                         load("roles", "grant_database", roles=granted, worker=quoted["worker"])))
    for component in GRANTED:
        out.append(Statement(f"grants of the {component}",
                             load("roles", f"grant_{component}", schema, role=quoted[component])))
    return out


def apply_roles(
    conn: psycopg.Connection,
    schema: str,
    prefix: str | None = None,
    passwords: Mapping[str, str] | None = None,
    login: bool = True,
) -> dict[str, str]:
    """Run the script in one transaction on ``conn``; the role names.

    Refused, changing nothing, when a role to create cannot be created by the
    connecting user, when the schema is missing, behind the latest migration or
    owned by another role than the owner role, or when an existing role of ours
    has attributes beyond least privilege (superuser, CREATEROLE, …).
    """
    statements = roles_script(schema, prefix, passwords, login)
    names = role_names(prefix or schema)
    me = conn.cursor(row_factory=dict_row).execute(
        load("roles", "connecting_user"), {"schema": schema}
    ).fetchone()
    assert me is not None
    existing = {row["rolname"]: row for row in conn.cursor(row_factory=dict_row).execute(
        load("roles", "role_attributes"), {"names": list(names.values())}
    )}
    missing = [n for n in names.values() if n not in existing]
    if missing and not (me["superuser"] or me["createrole"]):
        raise RolesError(
            f"the connecting user {me['username']!r} cannot create roles (it needs CREATEROLE "
            f"or superuser) and {', '.join(missing)} do not exist yet; nothing was changed"
        )
    if me["schema_owner"] is None:
        raise SchemaNotInitializedError(
            f"the event store schema {schema!r} does not exist: run 'evstore init' "
            f"connected as {names['owner']!r} first"
        )
    if me["schema_owner"] != names["owner"]:
        raise RolesError(
            f"schema {schema!r} is owned by {me['schema_owner']!r}, not by {names['owner']!r}: "
            f"create the schema as {names['owner']!r} (run 'evstore init' connected as it), "
            "see docs/security.md; nothing was changed"
        )
    _refuse_unsafe(existing, names)
    try:
        _check_schema(conn, schema)
        with conn.transaction():
            for statement in statements:
                conn.execute(statement.sql)
    except pgerrors.InsufficientPrivilege as exc:
        raise RolesError(
            f"the connecting user {me['username']!r} may not apply the roles: "
            f"{exc.diag.message_primary}; nothing was changed"
        ) from exc
    return names


def _refuse_unsafe(existing: Mapping[str, Mapping[str, object]], names: Mapping[str, str]) -> None:
    """An existing role of a component that holds more than least privilege is refused."""
    for component in GRANTED:
        row = existing.get(names[component])
        if row is None:
            continue
        unsafe = [a for a in ("rolsuper", "rolcreaterole", "rolcreatedb", "rolbypassrls") if row[a]]
        if unsafe:
            attrs = ", ".join(a.removeprefix("rol").upper() for a in unsafe)
            raise RolesError(
                f"role {names[component]!r} exists with {attrs}: that is more than least "
                "privilege; remove it (ALTER ROLE) or choose another --prefix; nothing was changed"
            )


def apply_roles_at(
    url: str,
    schema: str,
    prefix: str | None = None,
    passwords: Mapping[str, str] | None = None,
    login: bool = True,
) -> dict[str, str]:
    """``apply_roles`` on a connection of its own to ``url`` (a down server: StoreUnavailableError)."""
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreUnavailableError(f"cannot connect to {redact(url)}: {redact(detail)}") from exc
    with conn:
        return apply_roles(conn, schema, prefix, passwords, login)


def script_text(statements: list[Statement]) -> str:
    """The script for ``psql -f``: one transaction, each step under a comment."""
    parts = [load("roles", "begin")]
    parts += [f"-- {s.purpose}\n{s.sql}" for s in statements]
    parts.append(load("roles", "commit"))
    return "\n\n".join(parts) + "\n"


def _check_schema(conn: psycopg.Connection, schema: str) -> None:
    version, latest = current_version(conn, schema), latest_version()
    if version < latest:
        state = "does not exist" if version == 0 else f"is at migration {version} of {latest}"
        raise SchemaNotInitializedError(
            f"the event store schema {schema!r} {state}: run 'evstore init' (as the owner role) first"
        )
