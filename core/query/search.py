"""Full-text search over event data and metadata, ranked (``ts_rank``).

The query is web-style (``websearch_to_tsquery``: words, "quoted phrases",
``or``, ``-excluded``) in the text-search configuration of the settings
(EVENT_STORE_TEXT_SEARCH_CONFIG), over ``to_tsvector(data) || to_tsvector(metadata)``
(string values only; keys are not searched). Plain rows are ranked and cut
to the best ``limit`` by PostgreSQL; compressed rows are decoded and ranked by
the same expressions on their decoded documents; the two lists are merged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from ..errors import QueryError, QueryLimitError
from ..store.persistence import EventRecord
from .compiler import XID8, compile_sql
from .criteria import EventSearchCriteria, Leaf
from .rows import columns as _columns
from .rows import decoded_documents


def ranked(service: Any, query: str, event_types: Any, limit: int,
           extra: dict[str, Any]) -> list[tuple[EventRecord, float]]:
    """(event, rank) pairs, best first (ties in the global order)."""
    if not isinstance(query, str) or not query.strip():
        raise QueryError("search needs a non-empty text")
    if not 1 <= limit <= 10_000:
        raise QueryError(f"limit must be from 1 to 10,000 (got {limit})")
    leaf = Leaf("text", None, query)
    criteria = EventSearchCriteria(event_types=event_types, limit=limit, **extra)
    if criteria.event_types:  # a typo in a type filter is an error, never an empty answer
        service.store.check_event_types(criteria.event_types)
    compiler = service.compiler
    t = service.table
    c = t.c
    settings = service.store.settings
    columns: sa.ColumnClause[Any] = sa.literal_column(_columns())
    with service.db.connection() as conn:
        horizon = service.db.horizon(conn)
        base = [*compiler.where(criteria, t),
                c.transaction_id < sa.cast(sa.literal(str(horizon)), XID8)]
        rank = sa.func.ts_rank(compiler.tsvector(c), compiler.tsquery(query))
        plain = (sa.select(columns, rank.label("rank")).select_from(t)
                 .where(*base, c.payload.is_(None), compiler.leaf(leaf, c))
                 .order_by(sa.desc("rank"), c.transaction_id, c.global_position).limit(limit))
        packed = (sa.select(columns).select_from(t).where(*base, c.payload.is_not(None))
                  .order_by(c.transaction_id, c.global_position)
                  .limit(settings.query_row_budget + 1))
        with service._snapshot(conn):
            sql, params = compile_sql(plain)
            found = [(row[:-1], float(row[-1])) for row in service._fetch(conn, sql, params)]
            sql, params = compile_sql(packed)
            candidates = service._fetch(conn, sql, params)
            if len(found) + len(candidates) > settings.query_row_budget:
                raise QueryLimitError(
                    f"the search examined more than {settings.query_row_budget:,} rows "
                    "(EVENT_STORE_QUERY_ROW_BUDGET): add a time bound or event types")
            if candidates:
                found += _rank_decoded(service, conn, leaf, query, candidates)
    found.sort(key=lambda pair: (-pair[1], int(pair[0][9]), int(pair[0][8])))
    return [(service.store.decode_row(row), score) for row, score in found[:limit]]


def _rank_decoded(service: Any, conn: Any, leaf: Leaf, query: str,
                  rows: list[Any]) -> list[tuple[Any, float]]:
    compiler = service.compiler
    docs = decoded_documents(service, rows)
    statement = compiler.recheck(leaf)
    source = statement.selected_columns[0].table
    statement = statement.add_columns(
        sa.func.ts_rank(compiler.tsvector(source.c), compiler.tsquery(query)))
    sql, params = compile_sql(statement)
    params["docs"] = "[" + ",".join(d for _, d in docs) + "]"
    return [(rows[ordinal], float(score)) for ordinal, score in service._fetch(conn, sql, params)]


def search_criteria(criteria: EventSearchCriteria, query: str) -> EventSearchCriteria:
    """The criteria with a full-text leaf added (for unranked, paged search)."""
    leaf = Leaf("text", None, query)
    where = leaf if criteria.where is None else sa_and(criteria.where, leaf)
    return replace(criteria, where=where)


def sa_and(a: Any, b: Any) -> Any:
    from .criteria import And

    return And((a, b))
