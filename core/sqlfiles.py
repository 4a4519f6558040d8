"""Named SQL blocks from files of ``sql/`` other than ``queries.sql``.

The same format as :mod:`evstore.core.queries`: ``-- name: <name>`` starts a
block, ``{schema}`` is replaced with the quoted schema name, values travel as
psycopg parameters. Readers, consumer groups and snapshots keep their SQL in
``sql/consumers.sql`` and ``sql/snapshots.sql``.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from .queries import quote_schema

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.M)


@cache
def blocks(filename: str) -> dict[str, str]:
    text = resources.files(__package__).joinpath("sql", filename).read_text()
    parts = _NAME.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        out[name] = "\n".join(lines).strip()
    return out


def sql_from(filename: str, name: str, schema: str) -> str:
    """The block ``name`` of ``sql/<filename>`` with the schema filled in."""
    try:
        text = blocks(filename)[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} in sql/{filename}") from None
    return text.replace("{schema}", quote_schema(schema))
