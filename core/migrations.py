"""Apply the ordered SQL migrations of ``sql/migrations`` to a schema.

Idempotent and safe from several processes at once: the whole upgrade runs in
one transaction under an advisory lock keyed by the schema name, and each
migration is recorded in ``schema_migrations``.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from .sql import migrations, quote_schema


def latest_version() -> int:
    return max(number for number, _, _ in migrations())


def current_version(conn: psycopg.Connection, schema: str) -> int:
    """The highest applied migration; 0 when the schema is not initialised."""
    row = conn.execute(
        "SELECT to_regclass(%s)", [f"{quote_schema(schema)}.schema_migrations"]
    ).fetchone()
    if row is None or row[0] is None:
        return 0
    found = conn.execute(
        sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_migrations").format(
            sql.Identifier(schema)
        )
    ).fetchone()
    return int(found[0]) if found else 0


def apply_migrations(conn: psycopg.Connection, schema: str) -> list[str]:
    """Bring ``schema`` up to the latest migration; the names of those applied."""
    applied: list[str] = []
    quoted = quote_schema(schema)
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"evstore-migrate:{schema}"]
        )
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(schema))
        )
        done = current_version(conn, schema)
        for number, name, text in migrations():
            if number <= done:
                continue
            conn.execute(text.replace("{schema}", quoted).encode())
            conn.execute(
                sql.SQL("INSERT INTO {}.schema_migrations (version, name) VALUES (%s, %s)").format(
                    sql.Identifier(schema)
                ),
                [number, name],
            )
            applied.append(name)
    return applied
