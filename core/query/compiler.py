"""Criteria and predicates compiled to parameterised SQL with SQLAlchemy Core.

Every value, key and expression of a query travels as a bind parameter
(``%(name)s`` for psycopg); only names of ours (the schema, the columns, the
operators, the text-search configuration of the settings, validated) are SQL
text. Statements are compiled by SQLAlchemy's ``postgresql+psycopg`` dialect
and run on the store's own psycopg connections.

Compressed events keep their data as a ``bytea`` payload SQL cannot see. The
predicate is put in negation normal form (NOT only on leaves), so replacing a
leaf by TRUE can only let more rows through: a compressed row is selected by
the predicate with its data leaves made TRUE (a superset), then the service
evaluates the *same compiled predicate* on the decompressed document in
PostgreSQL (``recheck``), so both kinds of row are judged by one semantics.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg
from sqlalchemy.sql.compiler import SQLCompiler

from ..errors import QueryError
from .criteria import (
    INDEX_SEGMENT,
    And,
    EventSearchCriteria,
    Leaf,
    Not,
    Predicate,
    has_data_leaf,
    to_nnf,
)

# SQLAlchemy's dialect classes have unannotated constructors.
DIALECT = pg_psycopg.dialect()  # type: ignore[no-untyped-call]


class XID8(sa.types.UserDefinedType[int]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


class RegConfig(sa.types.UserDefinedType[str]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "regconfig"


_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("event_id", pg.UUID), ("aggregate_id", sa.Text), ("aggregate_type", sa.Text),
    ("event_type", sa.Text), ("event_version", sa.Integer), ("aggregate_version", sa.BigInteger),
    ("stream_id", sa.Text), ("stream_position", sa.BigInteger), ("global_position", sa.BigInteger),
    ("transaction_id", XID8), ("event_data", pg.JSONB), ("payload", pg.BYTEA),
    ("metadata", pg.JSONB), ("created_at", sa.DateTime(timezone=True)), ("status", sa.Text),
    ("compression", sa.Text), ("encryption", sa.Text), ("original_size", sa.Integer),
)
# The columns a predicate may read (the recheck's document carries exactly these).
PREDICATE_COLUMNS = ("event_data", "metadata", "event_type", "aggregate_id", "aggregate_type",
                     "stream_id", "event_version")


def events_table(schema: str) -> sa.TableClause:
    return sa.table("events", *(sa.column(n, t) for n, t in _COLUMNS), schema=schema)


_COMPILED: OrderedDict[Any, SQLCompiler] = OrderedDict()
_COMPILED_MAX = 512
_COMPILED_LOCK = threading.Lock()


def compile_sql(statement: sa.ClauseElement) -> tuple[str, dict[str, Any]]:
    """SQL text with ``%(name)s`` placeholders and the values, for a psycopg cursor.

    Compiled forms are kept by SQLAlchemy's cache key (the statement's shape,
    values left out), as SQLAlchemy's own engine does: the values of this
    statement are then filled into the cached form.
    """
    key = statement._generate_cache_key()
    if key is None:
        plain = statement.compile(dialect=DIALECT)
        return str(plain), dict(plain.params)
    compiled: SQLCompiler | None
    with _COMPILED_LOCK:
        compiled = _COMPILED.get(key.key)
        if compiled is not None:
            _COMPILED.move_to_end(key.key)
    if compiled is None:
        # A statement (not DDL) compiles to an SQLCompiler, whose params are always a dict.
        compiled = cast(SQLCompiler, statement.compile(dialect=DIALECT, cache_key=key))
        with _COMPILED_LOCK:
            _COMPILED[key.key] = compiled
            while len(_COMPILED) > _COMPILED_MAX:
                _COMPILED.popitem(last=False)
    return str(compiled), dict(compiled.construct_params(extracted_parameters=key.bindparams))


def _lit(value: Any, type_: Any = None) -> sa.BindParameter[Any]:
    return sa.literal(value, type_) if type_ is not None else sa.literal(value)


class PredicateCompiler:
    """Leaves to SQL over a set of columns (the events table or the recheck's documents)."""

    def __init__(self, text_config: str) -> None:
        # A validated setting (Settings.text_search_config), written as the index is.
        self.text_config = text_config

    # -- JSON access ---------------------------------------------------------------

    @staticmethod
    def _node(col: Any, keys: Sequence[str]) -> Any:
        if len(keys) == 1 and not INDEX_SEGMENT.match(keys[0]):
            return col.op("->", return_type=pg.JSONB)(_lit(keys[0], sa.Text))
        return col.op("#>", return_type=pg.JSONB)(sa.cast(_lit(list(keys)), pg.ARRAY(sa.Text)))

    @staticmethod
    def _text(col: Any, keys: Sequence[str]) -> Any:
        if len(keys) == 1 and not INDEX_SEGMENT.match(keys[0]):
            return col.op("->>", return_type=sa.Text)(_lit(keys[0], sa.Text))
        return col.op("#>>", return_type=sa.Text)(sa.cast(_lit(list(keys)), pg.ARRAY(sa.Text)))

    def tsvector(self, cols: Any) -> Any:
        cfg = sa.literal_column(f"'{self.text_config}'", RegConfig)
        data = sa.func.coalesce(cols.event_data, sa.cast(_lit("{}"), pg.JSONB))
        return sa.func.to_tsvector(cfg, data).op("||")(sa.func.to_tsvector(cfg, cols.metadata))

    def tsquery(self, query: str) -> Any:
        cfg = sa.literal_column(f"'{self.text_config}'", RegConfig)
        return sa.func.websearch_to_tsquery(cfg, _lit(query, sa.Text))

    # -- leaves ----------------------------------------------------------------------

    def leaf(self, leaf: Leaf, cols: Any) -> Any:
        if leaf.op == "text":
            return self.tsvector(cols).op("@@", is_comparison=True)(self.tsquery(leaf.value))
        path = leaf.path
        if not path.is_json:
            return self._column_leaf(leaf, getattr(cols, path.root))
        col = cols.event_data if path.root == "data" else cols.metadata
        if leaf.op == "jsonpath":
            mode, expr = leaf.value
            op = "@?" if mode == "exists" else "@@"
            return col.op(op, is_comparison=True)(sa.cast(_lit(expr, sa.Text), pg.JSONPATH))
        keys = path.keys
        if leaf.op == "exists":
            return self._node(col, keys).is_not(None)
        if leaf.op == "in":
            return sa.or_(*(self._json_compare(col, keys, "eq", v, path.root) for v in leaf.value))
        if leaf.op == "prefix":
            return sa.and_(self._typeof(col, keys) == "string",
                           sa.func.starts_with(self._text(col, keys), _lit(leaf.value, sa.Text)))
        return self._json_compare(col, keys, leaf.op, leaf.value, path.root)

    def _typeof(self, col: Any, keys: Sequence[str]) -> Any:
        return sa.func.jsonb_typeof(self._node(col, keys))

    def _json_compare(self, col: Any, keys: Sequence[str], op: str, value: Any, root: str) -> Any:
        typeof = self._typeof(col, keys)
        text = self._text(col, keys)
        if value is None:
            return typeof == "null"
        if isinstance(value, bool):
            return sa.and_(typeof == "boolean", text == ("true" if value else "false"))
        if isinstance(value, str):
            if op == "eq":
                test = sa.and_(typeof == "string", text == _lit(value, sa.Text))
            else:
                test = sa.and_(typeof == "string", _order(text.collate("C"), op, _lit(value, sa.Text)))
        else:
            number = sa.case((typeof == "number", sa.cast(text, sa.Numeric)))
            test = _order(number, op, _lit(Decimal(str(value)), sa.Numeric))
            if op != "eq":
                return test
        if op == "eq" and root == "data" and not any(INDEX_SEGMENT.match(k) for k in keys):
            # The GIN index (jsonb_path_ops) answers containment; the exact test follows.
            doc: Any = value
            for key in reversed(keys):
                doc = {key: doc}
            contains = col.op("@>", is_comparison=True)(sa.cast(_lit(json.dumps(doc)), pg.JSONB))
            return sa.and_(contains, test)
        return test

    @staticmethod
    def _column_leaf(leaf: Leaf, col: Any) -> Any:
        type_ = sa.Integer if leaf.path.root == "event_version" else sa.Text
        if leaf.op == "in":
            return col == sa.any_(sa.cast(_lit(list(leaf.value)), pg.ARRAY(type_)))
        if leaf.op == "prefix":
            return sa.func.starts_with(col, _lit(leaf.value, sa.Text))
        if leaf.op == "eq":
            return col == _lit(leaf.value, type_)
        target = col.collate("C") if type_ is sa.Text else col
        return _order(target, leaf.op, _lit(leaf.value, type_))

    # -- trees -----------------------------------------------------------------------

    def tree(self, node: Predicate, cols: Any, data_visible: bool = True) -> Any:
        """An NNF tree as SQL; with ``data_visible`` false its data leaves are TRUE (a superset)."""
        if isinstance(node, Leaf):
            if not data_visible and node.reads_data:
                return sa.true()
            return self.leaf(node, cols)
        if isinstance(node, Not):
            assert isinstance(node.item, Leaf), "the tree is in negation normal form"
            if not data_visible and node.item.reads_data:
                return sa.true()
            # A leaf that is unknown (a missing path) is false, so its negation is true.
            return self.leaf(node.item, cols).is_not(sa.true())
        parts = [self.tree(i, cols, data_visible) for i in node.items]
        return sa.and_(*parts) if isinstance(node, And) else sa.or_(*parts)

    def where(self, criteria: EventSearchCriteria, t: sa.TableClause) -> list[Any]:
        """The WHERE terms of a criteria over the events table (the order and cursor aside)."""
        c = t.c
        terms: list[Any] = []
        for name, column in (("aggregate_ids", c.aggregate_id), ("aggregate_types", c.aggregate_type),
                             ("event_types", c.event_type), ("stream_ids", c.stream_id)):
            values = getattr(criteria, name)
            if values is not None:
                terms.append(column == sa.any_(sa.cast(_lit(list(values)), pg.ARRAY(sa.Text))))
        if criteria.from_timestamp is not None:
            terms.append(c.created_at >= _lit(criteria.from_timestamp, sa.DateTime(timezone=True)))
        if criteria.to_timestamp is not None:
            terms.append(c.created_at < _lit(criteria.to_timestamp, sa.DateTime(timezone=True)))
        for name in ("user_id", "correlation_id", "causation_id"):
            value = getattr(criteria, name)
            if value is not None:
                # Written as the expression indexes of migration 0007 are: the text of
                # the field (a type test here would spoil the planner's estimates).
                terms.append(self._text(c.metadata, (name,)) == _lit(value, sa.Text))
        predicate = criteria.predicate
        if predicate is not None:
            nnf = to_nnf(predicate)
            full = self.tree(nnf, c)
            if has_data_leaf(nnf):
                hidden = self.tree(nnf, c, data_visible=False)
                full = sa.or_(sa.and_(c.payload.is_(None), full),
                              sa.and_(c.payload.is_not(None), hidden))
            terms.append(full)
        return terms

    def recheck(self, predicate: Predicate) -> sa.Select[Any]:
        """The ordinals of the documents (parameter ``docs``: a JSON array of decoded
        compressed rows) the predicate holds for."""
        types = dict(_COLUMNS)
        docs = sa.bindparam("docs", "[]", type_=sa.Text)
        rows = sa.func.jsonb_to_recordset(sa.cast(docs, pg.JSONB)).table_valued(
            sa.column("ord", sa.Integer), *(sa.column(n, types[n]) for n in PREDICATE_COLUMNS)
        ).render_derived(name="docs", with_types=True)
        return sa.select(rows.c.ord).where(self.tree(to_nnf(predicate), rows.c))


def _order(left: Any, op: str, right: Any) -> Any:
    if op == "eq":
        return left == right
    if op == "lt":
        return left < right
    if op == "le":
        return left <= right
    if op == "gt":
        return left > right
    if op == "ge":
        return left >= right
    raise QueryError(f"unknown comparison {op!r}")
