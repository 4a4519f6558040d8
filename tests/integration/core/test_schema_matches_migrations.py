"""core/sql/schema.sql describes exactly the schema the migrations build.

schema.sql is the readable reference (the code keeps applying migrations): this
test applies the migrations in order to one schema and schema.sql to another,
then compares catalog dumps of the two - columns (type, default, nullability,
identity, position), constraints (pg_get_constraintdef), indexes
(pg_get_indexdef), functions (pg_get_functiondef), triggers
(pg_get_triggerdef), partition keys (pg_get_partkeydef), sequences and object
comments - with the schema name replaced by ``{schema}``.

Left out on purpose: month partitions of ``events`` (``events_YYYY_MM``, made at
run time by ``create_partitions_ahead``, never by a migration) and everything
belonging to them; the rows of ``schema_migrations``; NOT NULL constraints as
catalog rows (PostgreSQL 18 keeps the name a column had when it was made NOT
NULL, so a renamed column would differ by name only; nullability itself is
compared through the columns).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg
from evstore.core.migrations import apply_migrations
from psycopg import sql

FROM_MIGRATIONS = "evs_from_migrations"
FROM_FILE = "evs_from_schema_file"

# Every query takes the schema name as its only parameter.
CATALOG: dict[str, str] = {
    "relations": """
        SELECT c.relname, c.relkind, c.relpersistence,
               coalesce(array_to_string(c.reloptions, ','), '') AS options,
               CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partkey
          FROM pg_class c
         WHERE c.relnamespace = %s::regnamespace AND NOT c.relispartition
         ORDER BY c.relname
    """,
    "columns": """
        SELECT c.relname,
               row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) AS position,
               a.attname, format_type(a.atttypid, a.atttypmod) AS type,
               a.attnotnull, a.attidentity, a.attgenerated, a.attstorage,
               pg_get_expr(d.adbin, d.adrelid) AS default_expr,
               coalesce(co.collname, '') AS collation
          FROM pg_attribute a
          JOIN pg_class c ON c.oid = a.attrelid
          LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0
                                   AND co.collname <> 'default'
         WHERE c.relnamespace = %s::regnamespace AND NOT c.relispartition
           AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY c.relname, a.attnum
    """,
    "constraints": """
        SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid) AS definition,
               k.condeferrable, k.condeferred, k.convalidated
          FROM pg_constraint k
          JOIN pg_class c ON c.oid = k.conrelid
         WHERE k.connamespace = %s::regnamespace AND NOT c.relispartition
           AND k.contype <> 'n'
         ORDER BY c.relname, k.conname
    """,
    "indexes": """
        SELECT t.relname AS table_name, i.relname AS index_name, pg_get_indexdef(i.oid) AS definition
          FROM pg_index x
          JOIN pg_class i ON i.oid = x.indexrelid
          JOIN pg_class t ON t.oid = x.indrelid
         WHERE i.relnamespace = %s::regnamespace AND NOT i.relispartition
         ORDER BY i.relname
    """,
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args,
               pg_get_functiondef(p.oid) AS definition
          FROM pg_proc p
         WHERE p.pronamespace = %s::regnamespace
         ORDER BY p.proname, args
    """,
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) AS definition, t.tgenabled
          FROM pg_trigger t
          JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace = %s::regnamespace AND NOT c.relispartition
           AND NOT t.tgisinternal
         ORDER BY c.relname, t.tgname
    """,
    "sequences": """
        SELECT c.relname, format_type(s.seqtypid, NULL) AS type, s.seqstart, s.seqincrement,
               s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
               coalesce(owner.relname || '.' || a.attname, '') AS owned_by, d.deptype
          FROM pg_sequence s
          JOIN pg_class c ON c.oid = s.seqrelid
          LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
                               AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
          LEFT JOIN pg_class owner ON owner.oid = d.refobjid
          LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE c.relnamespace = %s::regnamespace
         ORDER BY c.relname
    """,
    "types": """
        SELECT t.typname, t.typtype
          FROM pg_type t
          LEFT JOIN pg_class c ON c.oid = t.typrelid
         WHERE t.typnamespace = %s::regnamespace AND t.typelem = 0
           AND (c.oid IS NULL OR c.relkind = 'c')
         ORDER BY t.typname
    """,
    "comments": """
        SELECT c.relname, d.objsubid, d.description
          FROM pg_description d
          JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass
         WHERE c.relnamespace = %s::regnamespace AND NOT c.relispartition
        UNION ALL
        SELECT p.proname, d.objsubid, d.description
          FROM pg_description d
          JOIN pg_proc p ON p.oid = d.objoid AND d.classoid = 'pg_proc'::regclass
         WHERE p.pronamespace = %s::regnamespace
         ORDER BY 1, 2
    """,
}


def schema_file() -> str:
    return resources.files("evstore.core.sql").joinpath("schema.sql").read_text()


def apply_schema_file(conn: psycopg.Connection, schema: str, text: str) -> None:
    quoted = sql.Identifier(schema).as_string(None)
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(text.replace("{schema}", quoted).encode())


def normalise(value: Any, schema: str) -> Any:
    if isinstance(value, str):
        return value.replace(f'"{schema}"', "{schema}").replace(schema, "{schema}")
    return value


def dump(conn: psycopg.Connection, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for kind, query in CATALOG.items():
        params = [schema] * query.count("%s")
        rows = conn.execute(query, params).fetchall()
        out[kind] = sorted(tuple(normalise(v, schema) for v in row) for row in rows)
    return out


def differences(left: dict[str, list[tuple[Any, ...]]], right: dict[str, list[tuple[Any, ...]]]) -> str:
    lines = []
    for kind in CATALOG:
        a, b = set(left[kind]), set(right[kind])
        for row in sorted(a - b, key=repr):
            lines.append(f"{kind}: only from migrations: {row}")
        for row in sorted(b - a, key=repr):
            lines.append(f"{kind}: only in schema.sql:     {row}")
    return "\n".join(lines)


def test_schema_file_matches_the_migrations(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Given one schema built by the migrations and one by schema.sql
        apply_migrations(conn, FROM_MIGRATIONS)
        apply_schema_file(conn, FROM_FILE, schema_file())
        # When both are dumped from the catalogs
        migrated = dump(conn, FROM_MIGRATIONS)
        from_file = dump(conn, FROM_FILE)
    # Then the dump is not empty (the comparison means something) ...
    tables = {row[0] for row in migrated["relations"] if row[1] in ("r", "p")}
    assert {"events", "streams", "stream_checkpoints", "jobs", "archive_runs"} <= tables
    assert ("events", "p", "p", "", "RANGE (created_at)") in migrated["relations"]
    assert migrated["functions"] and migrated["triggers"] and migrated["sequences"]
    # ... and both are the same
    assert migrated == from_file, "schema.sql differs from the migrations:\n" + differences(
        migrated, from_file
    )


def test_the_comparison_sees_a_difference(database_url: str) -> None:
    # Given schema.sql with one column default changed at its end
    changed = schema_file() + ("\nALTER TABLE {schema}.events ALTER COLUMN event_version SET DEFAULT 2;\n")
    with psycopg.connect(database_url, autocommit=True) as conn:
        apply_migrations(conn, FROM_MIGRATIONS)
        apply_schema_file(conn, FROM_FILE, changed)
        # When both are dumped
        migrated = dump(conn, FROM_MIGRATIONS)
        from_file = dump(conn, FROM_FILE)
    # Then the dumps differ on that column only
    assert migrated != from_file
    report = differences(migrated, from_file)
    assert report.count("\n") == 1 and "event_version" in report, report
