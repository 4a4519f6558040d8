"""The archive's named SQL queries (``sql/archive.sql``), in procrastinate's style."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from ..queries import quote_schema

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.M)


@cache
def _blocks() -> dict[str, str]:
    text = resources.files("evstore.core").joinpath("sql/archive.sql").read_text()
    parts = _NAME.split(text)
    out: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
        out[name] = "\n".join(lines).strip()
    return out


def query(name: str, schema: str, **fragments: str) -> str:
    """The named query with ``{schema}`` and trusted fragments filled in."""
    text = _blocks()[name].replace("{schema}", quote_schema(schema))
    for key, value in fragments.items():
        text = text.replace("{" + key + "}", value)
    return text
