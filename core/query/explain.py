"""explain(criteria): the plan, the month partitions it opens, and concrete suggestions.

Suggestions: a missing time bound; sequential scans of large partitions; a
filter on a JSON path no index serves, with the exact ``CREATE INDEX`` per
month partition (an index on a partitioned table cannot be built
CONCURRENTLY, its partitions' can: build each, then the parent's with
``ON ONLY`` and ``ATTACH``). With the ``hypopg`` extension installed, each
suggested index is created hypothetically and kept only if the planner's
estimated cost drops; without it, the report says the suggestions are untested.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql as pgsql

from .compiler import compile_sql
from .criteria import INDEX_SEGMENT, EventSearchCriteria, Leaf, leaves

# A sequential scan of a partition estimated above this many rows is flagged.
LARGE_PARTITION_ROWS = 10_000
_PARTITION = re.compile(r"events_y\d{4}m\d{2}\Z")


@dataclass
class ExplainReport:
    statement: str
    plan: Any
    summary: str
    partitions_scanned: list[str]
    partitions_pruned: list[str]
    suggestions: list[str] = field(default_factory=list)
    hypopg: bool = False

    def text(self) -> str:
        lines = [f"plan: {self.summary}",
                 f"partitions scanned ({len(self.partitions_scanned)}): "
                 + (", ".join(self.partitions_scanned) or "none"),
                 f"partitions pruned ({len(self.partitions_pruned)}): "
                 + (", ".join(self.partitions_pruned) or "none")]
        lines += [f"suggestion: {s}" for s in self.suggestions] or ["suggestions: none"]
        if not self.hypopg:
            lines.append("hypopg is not installed: suggested indexes were not validated by the planner")
        return "\n".join(lines)


def _walk(node: dict[str, Any]) -> Any:
    yield node
    for child in node.get("Plans", []):
        yield from _walk(child)


def summarise(plan_json: Any) -> tuple[str, list[str]]:
    """A one-line plan summary and the partitions the plan opens."""
    root = plan_json[0]["Plan"]
    kinds: dict[str, int] = {}
    indexes: set[str] = set()
    partitions: set[str] = set()
    for node in _walk(root):
        kind = node["Node Type"]
        kinds[kind] = kinds.get(kind, 0) + 1
        if "Index Name" in node:
            indexes.add(node["Index Name"])
        rel = node.get("Relation Name", "")
        if _PARTITION.match(rel):
            partitions.add(rel)
    parts = ", ".join(f"{k} x{n}" if n > 1 else k for k, n in kinds.items())
    summary = f"{parts}; cost {root.get('Total Cost', 0):.0f}"
    if indexes:
        names = sorted(indexes)
        more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
        summary += f"; indexes: {', '.join(names[:3])}{more}"
    return summary, sorted(partitions)


def index_for(leaf: Leaf, text_config: str) -> tuple[str, str] | None:
    """(index name suffix, indexed expression) that would serve a leaf, if one would."""
    if leaf.op == "text":
        return "fts", (f"USING gin ((to_tsvector('{text_config}'::regconfig, "
                       f"coalesce(event_data, '{{}}'::jsonb)) || "
                       f"to_tsvector('{text_config}'::regconfig, metadata)))")
    path = leaf.path
    if not path.is_json or leaf.op in ("exists",):
        return None
    col = "event_data" if path.root == "data" else "metadata"
    if leaf.op == "jsonpath" or (path.root == "data" and leaf.op in ("eq", "in")
                                 and not any(INDEX_SEGMENT.match(k) for k in path.keys)):
        return f"{col}_gin", f"USING gin ({col} jsonb_path_ops)"
    keys = path.keys
    if len(keys) == 1 and not INDEX_SEGMENT.match(keys[0]):
        expr = f"{col} ->> {pgsql.Literal(keys[0]).as_string(None)}"
    else:
        expr = f"{col} #>> {pgsql.Literal('{' + ','.join(keys) + '}').as_string(None)}"
    name = re.sub(r"[^a-z0-9]+", "_", "_".join((path.root, *keys)).lower())[:40]
    if leaf.op in ("lt", "le", "gt", "ge", "prefix") and isinstance(leaf.value, str):
        return f"{name}_c", f'(({expr}) COLLATE "C")'
    if leaf.op in ("eq", "in"):
        return name, f"(({expr}))"
    return None


def explain(service: Any, criteria: EventSearchCriteria, analyze: bool = False) -> ExplainReport:
    db = service.db
    with db.connection() as conn:
        horizon = db.horizon(conn)
        after = None
        if criteria.after:
            from .cursor import decode_cursor

            after = decode_cursor(criteria.after, criteria)
        sql_text, params = compile_sql(service.statement(criteria, int(horizon), after, criteria.limit))
        with service._snapshot(conn):
            statement = db.sql("query", "explain", statement=sql_text,
                               analyze="true" if analyze else "false")
            plan = service._fetch(conn, statement, params)[0][0]
        existing = [d for (_n, d) in conn.execute(db.sql("query", "event_indexes")).fetchall()]
        (hypopg,) = conn.execute(db.sql("query", "hypopg_installed")).fetchone()
    summary, scanned = summarise(plan)
    parts = service.store.list_partitions()
    report = ExplainReport(sql_text, plan, summary, scanned,
                           [p.name for p in parts if p.name not in set(scanned)], hypopg=bool(hypopg))
    if criteria.from_timestamp is None and criteria.to_timestamp is None and len(parts) > 1:
        report.suggestions.append(
            f"add a time bound (from_timestamp / to_timestamp, --from/--to): without one the "
            f"query opens every month partition ({len(parts)})")
    rows = {p.name: p.row_count for p in parts}
    for node in _walk(plan[0]["Plan"]):
        rel = node.get("Relation Name", "")
        large = rows.get(rel, 0) > LARGE_PARTITION_ROWS
        if node["Node Type"] == "Seq Scan" and _PARTITION.match(rel) and large:
            report.suggestions.append(
                f"sequential scan of {rel} (~{rows[rel]:,} rows, filter: "
                f"{node.get('Filter', '-')[:120]}): narrow the time range or index the filtered field")
    normalised = " ".join(existing).replace(" ", "")
    for leaf in leaves(criteria.predicate) if criteria.predicate is not None else []:
        wanted = index_for(leaf, service.store.settings.text_search_config)
        if wanted is None:
            continue
        suffix, expr = wanted
        if _covered(expr, normalised):
            continue
        for p in parts if scanned == [] else [p for p in parts if p.name in scanned]:
            report.suggestions.append(
                f"{leaf.field or 'text'} ({leaf.op}) has no index: CREATE INDEX CONCURRENTLY "
                f"{p.name}_{suffix}_idx ON {db.quoted_schema}.{p.name} {expr};")
    return report


def _covered(expr: str, existing: str) -> bool:
    core = expr.replace(" ", "").replace("USING", "").lower()
    probe = re.sub(r"[()\"]", "", core)
    flat = re.sub(r"[()\"]|::text|::jsonb", "", existing.lower())
    return probe in flat
