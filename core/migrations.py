"""Apply the ordered SQL migrations of ``sql/migrations`` to a schema.

Idempotent and safe from several processes at once: the whole upgrade runs in
one transaction under an advisory lock keyed by the schema name, and each
migration is recorded in ``schema_migrations``.
"""

from __future__ import annotations

import psycopg

from .sql import load, migrations, quote_schema


def latest_version() -> int:
    return max(number for number, _, _ in migrations())


def current_version(conn: psycopg.Connection, schema: str) -> int:
    """The highest applied migration; 0 when the schema is not initialised."""
    row = conn.execute(
        load("store", "migrations_table_exists"), [f"{quote_schema(schema)}.schema_migrations"]
    ).fetchone()
    if row is None:
        return 0
    (table,) = row
    if table is None:
        return 0
    found = conn.execute(load("store", "migrated_version", schema)).fetchone()
    if found is None:
        return 0
    (version,) = found
    return int(version)


def apply_migrations(conn: psycopg.Connection, schema: str) -> list[str]:
    """Bring ``schema`` up to the latest migration; the names of those applied."""
    applied: list[str] = []
    quoted = quote_schema(schema)
    with conn.transaction():
        conn.execute(load("store", "advisory_lock"), [f"evstore-migrate:{schema}"])
        conn.execute(load("store", "create_schema", schema))
        conn.execute(load("store", "create_migrations_table", schema))
        done = current_version(conn, schema)
        for number, name, text in migrations():
            if number <= done:
                continue
            conn.execute(text.replace("{schema}", quoted).encode())
            conn.execute(load("store", "record_migration", schema), [number, name])
            applied.append(name)
    return applied
