"""Anonymizing declared fields: of a stored row or an archive line, and the snapshots built on them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .. import codecs
from .crypto import ANONYMIZED, PREFIX
from .declarations import PersonalData, parse_path, transform_at

if TYPE_CHECKING:
    import psycopg

    from ..store.persistence import EventStore


def anonymize_fields(pd: PersonalData, data: Any, meta: Any, sealed_too: bool) -> tuple[int, int]:
    """Replace the declared fields' values in place; (plain values replaced, sealed values seen)."""
    plain = sealed = 0

    def replace(value: Any) -> Any:
        nonlocal plain, sealed
        if value == ANONYMIZED:
            return value
        if isinstance(value, str) and value.startswith(PREFIX):
            sealed += 1
            return ANONYMIZED if sealed_too else value
        plain += 1
        return ANONYMIZED

    for path in pd.fields:
        root, steps = parse_path(path)
        transform_at(data if root == "data" else meta, steps, replace)
    return plain, sealed


def event_body(row: dict[str, Any]) -> Any:
    if row["payload"] is not None:
        return json.loads(codecs.decompress(row["compression"], bytes(row["payload"]),
                                            limit=row.get("original_size")))
    return json.loads(row["event_data"] or "null")


def as_event(row: dict[str, Any], data: Any, meta: Any) -> dict[str, Any]:
    return {"event_type": row["event_type"], "event_version": row["event_version"],
            "aggregate_type": row["aggregate_type"], "aggregate_id": row["aggregate_id"],
            "event_data": data, "metadata": meta}


def drop_snapshots(store: EventStore, conn: psycopg.Connection,
                   aggregates: set[tuple[str, str]]) -> int:
    if not aggregates:
        return 0
    types, ids = zip(*sorted(aggregates), strict=True)
    return int(conn.execute(store.db.sql("privacy", "delete_snapshots_of"),
                            {"types": list(types), "ids": list(ids)}).rowcount)
