"""The filter language of ``evstore query --where``: a restricted Python expression, parsed by ``ast``.

    data.email == "ada@example.com" and not metadata.source == "import"
    data.n >= 3 or data.tags[0] in ["a", "b"]
    exists(data.nested.k) and startswith(aggregate_id, "User-")
    jsonpath(data, "$.items[*] ? (@.qty > 10)") or match(data, "$.total > 100")
    text("grace hopper")

Fields are ``data.<key>...``, ``metadata.<key>...`` or a column (event_type,
aggregate_id, aggregate_type, stream_id, event_version); ``x[0]`` and
``x["odd key"]`` are keys too. Values are string, number, true/false
(``True``/``False``/``true``/``false``), ``None``/``null`` and lists of them. Only these
forms are accepted: anything else (calls of other names, attributes of
values, arithmetic, lambdas, ...) is refused with its position; nothing is
ever evaluated.
"""

from __future__ import annotations

import ast
from typing import Any

from ..errors import QueryError
from .criteria import And, Leaf, Not, Or, Predicate

_COMPARE = {ast.Eq: "eq", ast.NotEq: "ne", ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge"}
_FLIP = {"eq": "eq", "ne": "ne", "lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}
_NAMED = {"true": True, "false": False, "null": None}
MAX_LENGTH = 10_000


def parse_where(source: str) -> Predicate:
    if not isinstance(source, str) or not source.strip():
        raise QueryError("--where needs an expression, e.g. data.email == \"ada@example.com\"")
    if len(source) > MAX_LENGTH:
        raise QueryError(f"--where is longer than {MAX_LENGTH:,} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise QueryError(f"--where: invalid expression at column {exc.offset}: {exc.msg}") from None
    return _predicate(tree.body)


def _refuse(node: ast.AST, what: str = "") -> QueryError:
    col = getattr(node, "col_offset", 0) + 1
    kind = what or type(node).__name__
    return QueryError(f"--where: {kind} is not allowed (column {col}); use comparisons, "
                      "in, and/or/not, exists(), startswith(), jsonpath(), match(), text()")


def _predicate(node: ast.AST) -> Predicate:
    if isinstance(node, ast.BoolOp):
        items = tuple(_predicate(v) for v in node.values)
        return And(items) if isinstance(node.op, ast.And) else Or(items)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return Not(_predicate(node.operand))
    if isinstance(node, ast.Compare):
        parts = []
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            parts.append(_compare(left, op, right))
            left = right
        return parts[0] if len(parts) == 1 else And(tuple(parts))
    if isinstance(node, ast.Call):
        return _call(node)
    raise _refuse(node)


def _compare(left: ast.AST, op: ast.cmpop, right: ast.AST) -> Predicate:
    if isinstance(op, ast.In | ast.NotIn):
        values = _value(right)
        if not isinstance(values, list):
            raise _refuse(right, "'in' without a list")
        leaf = Leaf("in", _field(left), tuple(values))
        return Not(leaf) if isinstance(op, ast.NotIn) else leaf
    name = _COMPARE.get(type(op))
    if name is None:
        raise _refuse(left, f"the operator {type(op).__name__}")
    if _is_field(left):
        return Leaf(name, _field(left), _value(right))
    if _is_field(right):
        return Leaf(_FLIP[name], _field(right), _value(left))
    raise _refuse(left, "a comparison without a field")


def _call(node: ast.Call) -> Predicate:
    if not isinstance(node.func, ast.Name) or node.keywords:
        raise _refuse(node, "this call")
    name, args = node.func.id, node.args
    if name == "exists" and len(args) == 1:
        return Leaf("exists", _field(args[0]))
    if name == "startswith" and len(args) == 2:
        return Leaf("prefix", _field(args[0]), _value(args[1]))
    if name in ("jsonpath", "match") and len(args) == 2:
        mode = "exists" if name == "jsonpath" else "match"
        return Leaf("jsonpath", _field(args[0]), (mode, _value(args[1])))
    if name == "text" and len(args) == 1:
        return Leaf("text", None, _value(args[0]))
    raise _refuse(node, f"the call {name}() with {len(args)} argument(s)")


def _is_field(node: ast.AST) -> bool:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return isinstance(node, ast.Name) and node.id not in _NAMED and node.id not in ("True", "False", "None")


def _field(node: ast.AST) -> str:
    keys: list[str] = []
    top = node
    while isinstance(node, ast.Attribute | ast.Subscript):
        if isinstance(node, ast.Attribute):
            keys.append(node.attr)
        else:
            key = node.slice
            if not isinstance(key, ast.Constant) or isinstance(key.value, bool) \
                    or not isinstance(key.value, str | int):
                raise _refuse(node, "a subscript that is not a string or an integer")
            keys.append(str(key.value))
        node = node.value
    if not isinstance(node, ast.Name):
        raise _refuse(top, "a field that is not a name")
    return ".".join([node.id, *reversed(keys)])


def _value(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and (
            node.value is None or isinstance(node.value, str | int | float | bool)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) \
            and isinstance(node.operand, ast.Constant) \
            and isinstance(node.operand.value, int | float) and not isinstance(node.operand.value, bool):
        return -node.operand.value
    if isinstance(node, ast.Name) and node.id in _NAMED:
        return _NAMED[node.id]
    if isinstance(node, ast.List | ast.Tuple):
        return [_value(v) for v in node.elts]
    raise _refuse(node, "this value")
