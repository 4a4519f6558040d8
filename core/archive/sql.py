"""The archive's named SQL queries (``sql/archive.sql``), in procrastinate's style."""

from __future__ import annotations

from ..sql import sql_from


def query(name: str, schema: str, **fragments: str) -> str:
    """The named query of ``sql/archive.sql`` with ``{schema}`` and trusted fragments filled in."""
    return sql_from("archive.sql", name, schema, **fragments)
