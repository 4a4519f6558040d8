"""What a query asks: EventSearchCriteria and its predicate tree.

A predicate is a tree of leaves combined with :class:`And`, :class:`Or` and
:class:`Not` to any depth. A leaf names a *field*: ``data.<key>.<key>...``
(the event's data), ``metadata.<key>...`` (its metadata) or a column of the
record (``event_type``, ``aggregate_id``, ``aggregate_type``, ``stream_id``,
``event_version``). Semantics (the same in SQL and in :mod:`.evaluate`):

- every leaf is true or false, never unknown: a missing path, or a value of another
  JSON type than the one compared with, makes the leaf false (``Not(leaf)`` true);
- ``eq`` compares within one JSON type (numbers as exact decimals, strings
  exactly, booleans, null); ``lt``/``le``/``gt``/``ge`` compare numbers, or
  strings by code point; ``ne`` is ``Not(eq)``;
- ``in``: an ``or`` of ``eq``; ``prefix``: a string's start; ``exists``: the path is there (even null);
- ``jsonpath``: PostgreSQL's ``@?`` (mode ``exists``) or ``@@`` (``match``); ``text``:
  a full-text match (``websearch_to_tsquery``) over data and metadata.

A path segment that is an integer indexes an array (as PostgreSQL's ``#>``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from ..errors import QueryError

JSON_ROOTS = ("data", "metadata")
TEXT_COLUMNS = ("event_type", "aggregate_id", "aggregate_type", "stream_id")
INT_COLUMNS = ("event_version",)
COLUMN_FIELDS = TEXT_COLUMNS + INT_COLUMNS
COMPARE_OPS = ("eq", "ne", "lt", "le", "gt", "ge")
OPS = (*COMPARE_OPS, "in", "prefix", "exists", "jsonpath", "text")
MAX_DEPTH = 32
MAX_SEGMENTS = 16
INDEX_SEGMENT = re.compile(r"-?[0-9]+\Z")
Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class FieldPath:
    """A parsed field: its root (data, metadata or a column) and its key path."""

    root: str
    keys: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        if not isinstance(text, str) or not text or "\x00" in text:
            raise QueryError(f"a field must be a non-empty string without NUL (got {text!r})")
        root, _, rest = text.partition(".")
        if root in COLUMN_FIELDS:
            if rest:
                raise QueryError(f"field {text!r}: the column {root!r} has no sub-fields")
            return cls(root)
        if root not in JSON_ROOTS:
            raise QueryError(
                f"unknown field {text!r}: a field is data.<path>, metadata.<path> or one of "
                f"{', '.join(COLUMN_FIELDS)}")
        if not rest and "." not in text:
            return cls(root)  # the whole document (a jsonpath's subject)
        keys = tuple(rest.split("."))
        if any(k == "" for k in keys):
            raise QueryError(f"malformed path {text!r}: expected {root}.<key>[.<key>...] "
                             "with no empty key")
        if len(keys) > MAX_SEGMENTS:
            raise QueryError(f"path {text!r} is deeper than {MAX_SEGMENTS} keys")
        return cls(root, keys)

    @property
    def is_json(self) -> bool:
        return self.root in JSON_ROOTS

    def __str__(self) -> str:
        return ".".join((self.root, *self.keys))


def _check_scalar(value: Any, where: str) -> Scalar:
    if isinstance(value, str) and "\x00" in value:
        raise QueryError(f"{where}: a string may not contain NUL characters")
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QueryError(f"{where}: {value!r} is not a JSON number")
        return value
    raise QueryError(f"{where}: values are strings, numbers, booleans or null (got {type(value).__name__})")


@dataclass(frozen=True)
class Leaf:
    """One test on one field (see the module's docstring for each operator)."""

    op: str
    field: str | None = None
    value: Any = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise QueryError(f"unknown operator {self.op!r}: one of {', '.join(OPS)}")
        if isinstance(self.value, list):
            object.__setattr__(self, "value", tuple(self.value))
        if self.op == "text":
            if not isinstance(self.value, str) or not self.value.strip() or "\x00" in self.value:
                raise QueryError("a text search needs a non-empty string (without NUL)")
            return
        path = self.path
        where = f"{self.op} on {self.field}"
        if self.op == "jsonpath":
            if path.root not in JSON_ROOTS or path.keys:
                raise QueryError(f"{where}: a jsonpath applies to 'data' or 'metadata' as a whole")
            mode, expr = self.value if isinstance(self.value, tuple) else (None, None)
            if mode not in ("exists", "match") or not isinstance(expr, str) or not expr.strip():
                raise QueryError(f"{where}: expected (mode, expression), mode 'exists' (@?) or 'match' (@@)")
            return
        if path.is_json and not path.keys:
            raise QueryError(f"{where}: name a key, e.g. {path.root}.email")
        if self.op == "in":
            if not isinstance(self.value, tuple) or not self.value:
                raise QueryError(f"{where}: 'in' needs a non-empty list of values")
            for v in self.value:
                self._check_value(v, where)
            return
        if self.op == "exists":
            if not path.is_json:
                raise QueryError(f"{where}: 'exists' applies to data./metadata. paths")
            return
        self._check_value(self.value, where)
        if self.op == "prefix" and not isinstance(self.value, str):
            raise QueryError(f"{where}: 'prefix' needs a string")
        if self.op in ("lt", "le", "gt", "ge") and (
                self.value is None or isinstance(self.value, bool)):
            raise QueryError(f"{where}: order comparisons need a number or a string")

    def _check_value(self, value: Any, where: str) -> None:
        _check_scalar(value, where)
        root = self.path.root
        if root in TEXT_COLUMNS and not isinstance(value, str):
            raise QueryError(f"{where}: the column {root} holds strings (got {value!r})")
        if root in INT_COLUMNS and (isinstance(value, bool) or not isinstance(value, int)):
            raise QueryError(f"{where}: the column {root} holds integers (got {value!r})")

    @property
    def path(self) -> FieldPath:
        if self.field is None:
            raise QueryError(f"operator {self.op!r} needs a field")
        return FieldPath.parse(self.field)

    @property
    def reads_data(self) -> bool:
        """Whether the leaf needs the event's data (which SQL cannot see when compressed)."""
        return self.op == "text" or self.path.root == "data"


@dataclass(frozen=True)
class And:
    items: tuple[Predicate, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Predicate, ...]


@dataclass(frozen=True)
class Not:
    item: Predicate


Predicate = Leaf | And | Or | Not


# -- building predicates -------------------------------------------------------

def f(name: str) -> FieldRef:
    """``f("data.email") == "x"``, ``f("data.n") > 3``, ``f("metadata.source").is_in([...])``."""
    FieldPath.parse(name)
    return FieldRef(name)


@dataclass(frozen=True)
class FieldRef:
    name: str

    def __eq__(self, value: object) -> Leaf:  # type: ignore[override]
        return Leaf("eq", self.name, value)

    def __ne__(self, value: object) -> Leaf:  # type: ignore[override]
        return Leaf("ne", self.name, value)

    def __lt__(self, value: object) -> Leaf:
        return Leaf("lt", self.name, value)

    def __le__(self, value: object) -> Leaf:
        return Leaf("le", self.name, value)

    def __gt__(self, value: object) -> Leaf:
        return Leaf("gt", self.name, value)

    def __ge__(self, value: object) -> Leaf:
        return Leaf("ge", self.name, value)

    def __hash__(self) -> int:
        return hash(self.name)

    def is_in(self, values: Sequence[Any]) -> Leaf:
        return Leaf("in", self.name, tuple(values))

    def startswith(self, prefix: str) -> Leaf:
        return Leaf("prefix", self.name, prefix)

    def exists(self) -> Leaf:
        return Leaf("exists", self.name)

    def jsonpath(self, expression: str, mode: str = "exists") -> Leaf:
        return Leaf("jsonpath", self.name, (mode, expression))


def all_of(*items: Predicate) -> And:
    return And(tuple(items))


def any_of(*items: Predicate) -> Or:
    return Or(tuple(items))


def text(query: str) -> Leaf:
    return Leaf("text", None, query)


def check_tree(node: Any, depth: int = 0) -> None:
    """Refuse anything that is not a predicate (a typo must never be a dropped filter)."""
    if depth > MAX_DEPTH:
        raise QueryError(f"predicate nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, Leaf):
        return
    if isinstance(node, And | Or):
        if not node.items:
            raise QueryError(f"{type(node).__name__.lower()} needs at least one item")
        for item in node.items:
            check_tree(item, depth + 1)
        return
    if isinstance(node, Not):
        check_tree(node.item, depth + 1)
        return
    raise QueryError(f"not a predicate: {node!r} (use Leaf, And, Or, Not or f('data.x') == ...)")


def to_nnf(node: Predicate, negate: bool = False) -> Predicate:
    """The tree with NOT pushed down to the leaves (``ne`` becomes ``Not(eq)``)."""
    if isinstance(node, Leaf):
        if node.op == "ne":
            return to_nnf(Not(Leaf("eq", node.field, node.value)), negate)
        return Not(node) if negate else node
    if isinstance(node, Not):
        return to_nnf(node.item, not negate)
    items = tuple(to_nnf(i, negate) for i in node.items)
    if isinstance(node, And):
        return Or(items) if negate else And(items)
    return And(items) if negate else Or(items)


def has_data_leaf(node: Predicate) -> bool:
    if isinstance(node, Leaf):
        return node.reads_data
    if isinstance(node, Not):
        return has_data_leaf(node.item)
    return any(has_data_leaf(i) for i in node.items)


def leaves(node: Predicate) -> list[Leaf]:
    if isinstance(node, Leaf):
        return [node]
    if isinstance(node, Not):
        return leaves(node.item)
    return [leaf for item in node.items for leaf in leaves(item)]


def map_leaves(node: Predicate, fn: Any) -> Predicate:
    """The tree with each leaf replaced by ``fn(leaf)`` (``None``: kept)."""
    if isinstance(node, Leaf):
        return fn(node) or node
    if isinstance(node, Not):
        return Not(map_leaves(node.item, fn))
    return type(node)(tuple(map_leaves(i, fn) for i in node.items))


def tree_to_json(node: Predicate) -> Any:
    if isinstance(node, Leaf):
        value = list(node.value) if isinstance(node.value, tuple) else node.value
        return {"op": node.op, "field": node.field, "value": value}
    if isinstance(node, Not):
        return {"not": tree_to_json(node.item)}
    return {type(node).__name__.lower(): [tree_to_json(i) for i in node.items]}


# -- criteria ---------------------------------------------------------------------

@dataclass(frozen=True)
class EventSearchCriteria:
    """The spec's search criteria; every list is an OR of its values, the fields an AND."""

    aggregate_ids: Sequence[str] | None = None
    aggregate_types: Sequence[str] | None = None
    event_types: Sequence[str] | None = None
    from_timestamp: datetime | None = None
    to_timestamp: datetime | None = None
    stream_ids: Sequence[str] | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    user_id: str | None = None
    # Predicates on the event's data and metadata (and columns): one tree each,
    # both must hold (a single ``where`` is the same thing).
    data: Predicate | None = None
    metadata: Predicate | None = None
    where: Predicate | None = None
    limit: int = 100
    order: str = "asc"
    after: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.extra:
            raise QueryError(f"unknown criteria: {', '.join(sorted(self.extra))}")
        for name in ("aggregate_ids", "aggregate_types", "event_types", "stream_ids"):
            value = getattr(self, name)
            if value is None:
                continue
            ok = (str, uuid.UUID) if name == "aggregate_ids" else str  # the spec's ids: UUIDs
            if isinstance(value, str | bytes) or not all(isinstance(v, ok) for v in value):
                raise QueryError(f"{name} must be a list of strings (got {value!r})")
            if not list(value):
                raise QueryError(f"{name} must not be empty (leave it out to match any)")
            object.__setattr__(self, name, tuple(str(v) for v in value))
        for name in ("correlation_id", "causation_id", "user_id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, name, str(value))  # a uuid.UUID is its text
        for name in ("from_timestamp", "to_timestamp"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise QueryError(f"{name} must be a timezone-aware datetime (got {value!r})")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 1 <= self.limit <= 100_000:
            raise QueryError(f"limit must be from 1 to 100,000 (got {self.limit!r})")
        if self.order not in ("asc", "desc"):
            raise QueryError(f"order must be 'asc' or 'desc' (got {self.order!r})")
        for name in ("data", "metadata", "where"):
            tree = getattr(self, name)
            if tree is not None:
                check_tree(tree)
        for name, root in (("data", "data"), ("metadata", "metadata")):
            tree = getattr(self, name)
            if tree is not None:
                _check_roots(tree, root, name)

    @property
    def predicate(self) -> Predicate | None:
        trees = [t for t in (self.data, self.metadata, self.where) if t is not None]
        if not trees:
            return None
        return trees[0] if len(trees) == 1 else And(tuple(trees))

    def normalised(self) -> dict[str, Any]:
        """A canonical JSON-able form (the cache key and the cursor's fingerprint)."""
        out: dict[str, Any] = {}
        for fl in fields(self):
            value = getattr(self, fl.name)
            if value is None or fl.name in ("extra", "after"):
                continue
            if fl.name in ("data", "metadata", "where"):
                value = tree_to_json(value)
            elif isinstance(value, tuple):
                value = sorted(set(value))
            elif isinstance(value, datetime):
                value = value.isoformat()
            out[fl.name] = value
        return out

    def fingerprint(self, without: tuple[str, ...] = ("limit",)) -> str:
        shape = {k: v for k, v in self.normalised().items() if k not in without}
        return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_roots(node: Predicate, root: str, name: str) -> None:
    if isinstance(node, Leaf):
        if node.op != "text" and node.path.root != root:
            raise QueryError(f"criteria.{name} holds {root}.<path> predicates (got {node.field!r}); "
                             "use criteria.where for others")
        return
    for item in (node.items if isinstance(node, And | Or) else (node.item,)):
        _check_roots(item, root, name)
