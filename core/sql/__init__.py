"""SQL lives in ``sql/``: named blocks of ``<file>.sql`` and ordered migrations.

Every statement of the core is a block ``-- name: <name>`` of one of these
files; code asks for it with ``Database.sql(file, name)`` (or ``load`` before a
Database exists: migrations, connection set-up). Names that vary (the schema)
are quoted with :class:`psycopg.sql.Identifier` and substituted for the
``{schema}`` placeholder; values always travel as parameters.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from psycopg import sql

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.M)


@cache
def blocks(filename: str) -> dict[str, str]:
    """The named blocks (``-- name: <name>``) of ``sql/<filename>``."""
    text = resources.files(__package__).joinpath(filename).read_text()
    parts = _NAME.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        out[name] = "\n".join(lines).strip()
    return out


@cache
def quote_schema(schema: str) -> str:
    """The schema as a quoted SQL identifier (the name is validated beforehand)."""
    return sql.Identifier(schema).as_string(None)


def load(file: str, name: str, schema: str | None = None, **fragments: str) -> str:
    """The block ``name`` of ``sql/<file>.sql`` with ``{schema}`` (and trusted fragments) filled in.

    ``schema`` may be left out for a statement that names no table of ours
    (``SET TIME ZONE``, ``SELECT 1``).
    """
    try:
        text = blocks(f"{file}.sql")[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in sql/{file}.sql") from None
    if schema is not None:
        text = text.replace("{schema}", quote_schema(schema))
    for key, value in fragments.items():
        text = text.replace("{" + key + "}", value)
    return text


def migrations() -> list[tuple[int, str, str]]:
    """(number, name, sql text) of every migration, in order."""
    folder = resources.files(__package__).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text()))
    return sorted(found)
