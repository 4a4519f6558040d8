"""The predicate semantics in plain Python: the reference the SQL compiler is tested against.

``matches(criteria, event)`` says whether a decoded EventRecord satisfies a
criteria's fields and predicate (everything but the order, cursor and limit,
and except ``jsonpath`` and ``text`` leaves, which only PostgreSQL evaluates).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ..errors import QueryError
from ..store.persistence import EventRecord
from .criteria import INDEX_SEGMENT, And, EventSearchCriteria, Leaf, Not, Or, Predicate

_MISSING = object()


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def walk(doc: Any, keys: tuple[str, ...]) -> Any:
    """The value at a path as PostgreSQL's ``#>`` finds it (``_MISSING`` when it does not)."""
    for key in keys:
        if isinstance(doc, dict):
            if key not in doc:
                return _MISSING
            doc = doc[key]
        elif isinstance(doc, list) and INDEX_SEGMENT.match(key):
            i = int(key)
            if not -len(doc) <= i < len(doc):
                return _MISSING
            doc = doc[i]
        else:
            return _MISSING
    return doc


def _compare(value: Any, op: str, target: Any) -> bool:
    if target is None:
        return op == "eq" and value is None
    kind = json_type(target)
    if json_type(value) != kind:
        return False
    if kind == "boolean":
        return op == "eq" and value is target
    if kind == "number":
        value, target = Decimal(repr(value)), Decimal(repr(target))
    if op == "eq":
        return bool(value == target)
    return bool({"lt": value < target, "le": value <= target,
                 "gt": value > target, "ge": value >= target}[op])


def leaf_holds(leaf: Leaf, event: EventRecord) -> bool:
    if leaf.op in ("jsonpath", "text"):
        raise QueryError(f"the Python evaluator has no {leaf.op!r} (PostgreSQL evaluates it)")
    if leaf.op == "ne":
        return not leaf_holds(Leaf("eq", leaf.field, leaf.value), event)
    path = leaf.path
    if path.is_json:
        doc = event.event_data if path.root == "data" else event.metadata.to_dict()
        value = walk(doc, path.keys)
        if value is _MISSING:
            return False
    else:
        value = getattr(event, path.root)
    if leaf.op == "exists":
        return True
    if leaf.op == "in":
        return any(_compare(value, "eq", v) for v in leaf.value)
    if leaf.op == "prefix":
        return isinstance(value, str) and value.startswith(leaf.value)
    return _compare(value, leaf.op, leaf.value)


def holds(node: Predicate, event: EventRecord) -> bool:
    if isinstance(node, Leaf):
        return leaf_holds(node, event)
    if isinstance(node, Not):
        return not holds(node.item, event)
    if isinstance(node, And):
        return all(holds(i, event) for i in node.items)
    assert isinstance(node, Or)
    return any(holds(i, event) for i in node.items)


def matches(criteria: EventSearchCriteria, event: EventRecord) -> bool:
    c = criteria
    meta = event.metadata.to_dict()
    checks = (
        c.aggregate_ids is None or event.aggregate_id in c.aggregate_ids,
        c.aggregate_types is None or event.aggregate_type in c.aggregate_types,
        c.event_types is None or event.event_type in c.event_types,
        c.stream_ids is None or event.stream_id in c.stream_ids,
        c.from_timestamp is None or event.created_at >= c.from_timestamp,
        c.to_timestamp is None or event.created_at < c.to_timestamp,
        c.user_id is None or _text(meta.get("user_id")) == c.user_id,
        c.correlation_id is None or _text(meta.get("correlation_id")) == c.correlation_id,
        c.causation_id is None or _text(meta.get("causation_id")) == c.causation_id,
    )
    if not all(checks):
        return False
    return c.predicate is None or holds(c.predicate, event)


def _text(value: Any) -> str | None:
    """A JSON value as PostgreSQL's ``->>`` gives it (strings and booleans exactly)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(", ", ": "))
