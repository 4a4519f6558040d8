"""The house rules of the code, checked by reading the sources (ast; the only
import is the SQL block splitter of core/sql, so blocks are read as the code reads them).

- No import cycle between evstore's modules, counting imports inside functions
  and under ``TYPE_CHECKING`` (a cycle hidden in a function is still a cycle).
- Imports point one way: cli -> schedules -> workers -> core. Inside core,
  feature packages (reader, snapshots, archive, jobs, privacy) -> store -> base
  modules (errors, config, codecs, serialization, sql, config_file, db,
  migrations, embedded); feature code depends on the store's contract
  (``store.persistence``), never on the concrete ``store.postgres``.
- No Python file under core/ longer than 400 lines.
- Every SQL statement lives in a .sql file: no string constant (f-string parts
  included, docstrings excluded) in core/, workers/, schedules/ or evstore/ that
  starts with an SQL keyword (log messages excluded too).
- Every ``x.sql("file", "block", **fragments)`` with literal names asks for a
  block that exists in core/sql/<file>.sql, with exactly its ``{fragments}``
  (a typo would otherwise surface only when that path runs); so does every
  call of a one-line wrapper such as ``def _sql(self, name): return
  self.db.sql("reader", name)``.

See docs/architecture.md for the layout these rules keep.
"""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from evstore.core.sql import blocks

ROOT = Path(__file__).resolve().parents[2]

# Folder -> the package it is installed as (pyproject.toml package-dir).
PACKAGES = {
    "core": "evstore.core",
    "workers": "evstore.workers",
    "schedules": "evstore.schedules",
    "evstore": "evstore",
}

BASE = ("errors", "config", "codecs", "serialization", "sql", "config_file", "db", "migrations", "embedded",
        "keys", "checksums", "redaction", "telemetry")
FEATURES = ("reader", "snapshots", "archive", "jobs", "privacy", "roles", "query")
CONCRETE_STORE = "evstore.core.store.postgres"
MAX_CORE_LINES = 400
SQL_KEYWORDS = (
    "SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|WITH|LOCK|BEGIN|COMMIT|SET|SHOW|TRUNCATE|NOTIFY|LISTEN"
)
# A keyword (case sensitive) at the start, then whitespace, a semicolon or the end.
SQL_START = re.compile(rf"^\s*(?:{SQL_KEYWORDS})(?:\s|;|$)")


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(ROOT))


@cache
def modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            name = ".".join([package, *parts])
            found[name] = Module(name, path, is_package)
    return found


@cache
def tree(name: str) -> ast.Module:
    module = modules()[name]
    return ast.parse(module.path.read_text(), filename=str(module.path))


def from_base(module: Module, item: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` statement reads from."""
    if not item.level:
        return item.module or ""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for _ in range(item.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{item.module}" if item.module else package


def imported_names(module: Module, node: ast.Module) -> Iterator[tuple[str, int]]:
    """Every module name an import anywhere in ``node`` (functions, TYPE_CHECKING) asks for.

    ``from pkg import name`` asks for ``pkg.name`` when that is a module, else for ``pkg``.
    """
    known = modules()
    for item in ast.walk(node):
        if isinstance(item, ast.Import):
            for alias in item.names:
                yield alias.name, item.lineno
        elif isinstance(item, ast.ImportFrom):
            base = from_base(module, item)
            for alias in item.names:
                full = f"{base}.{alias.name}"
                yield (full if full in known else base), item.lineno


def resolve(name: str, known: dict[str, Module]) -> str | None:
    """The evstore module ``name`` refers to: itself, or the closest enclosing module we know."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def graph() -> dict[str, dict[str, int]]:
    """module -> {evstore module it imports: first line}."""
    known = modules()
    edges: dict[str, dict[str, int]] = {}
    for name, module in known.items():
        out: dict[str, int] = {}
        for target, line in imported_names(module, tree(name)):
            resolved = resolve(target, known) if target.startswith("evstore") else None
            if resolved is not None and resolved != name:
                out.setdefault(resolved, line)
        edges[name] = out
    return edges


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Import cycles as paths ``[a, b, ..., a]``: one for each edge of a depth-first walk
    that leads back to a module still on the walk's path (there is such an edge
    exactly when the graph has a cycle)."""
    found: list[list[str]] = []
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        if node in path:
            found.append([*path[path.index(node):], node])
            return
        if node in done:
            return
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(edges):
        visit(node)
    return found


def describe(cycle: list[str], edges: Mapping[str, Mapping[str, int]]) -> str:
    """``a (line 3) -> b (line 7) -> a``: each import with its line."""
    return " -> ".join([*(f"{a} (line {edges[a][b]})" for a, b in itertools.pairwise(cycle)), cycle[-1]])


def layer(name: str) -> str:
    for prefix, label in (
        ("evstore.core", "core"),
        ("evstore.workers", "workers"),
        ("evstore.schedules", "schedules"),
        ("evstore.cli", "cli"),
    ):
        if name == prefix or name.startswith(prefix + "."):
            return label
    return "app"  # evstore/__init__.py, evstore/workload.py


def core_part(name: str) -> str:
    """'base', 'store', a feature package's name, or 'facade' (evstore.core itself)."""
    if name == "evstore.core":
        return "facade"
    first = name.split(".")[2]
    if first in FEATURES:
        return first
    if first == "store":
        return "store"
    assert first in BASE, f"{name}: a core module that is neither base, store nor feature (update BASE)"
    return "base"


def violations(crosses: Callable[[str, str], bool]) -> list[str]:
    return sorted(
        f"{modules()[source].rel}:{line}: {source} imports {target}"
        for source, targets in graph().items()
        for target, line in targets.items()
        if crosses(source, target)
    )


def _crosses_layers(source: str, target: str) -> bool:
    forbidden = {
        "core": {"workers", "schedules", "cli", "app"},
        "workers": {"schedules", "cli", "app"},
        "schedules": {"cli", "app"},
    }
    return layer(target) in forbidden.get(layer(source), set())


def _crosses_core(source: str, target: str) -> bool:
    if layer(source) != "core" or layer(target) != "core":
        return False
    src, dst = core_part(source), core_part(target)
    if src == "base":
        return dst in (*FEATURES, "store", "facade")
    if src == "store":
        return dst in (*FEATURES, "facade")
    if src in FEATURES:
        return target == CONCRETE_STORE or dst == "facade"
    return False


LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}


def prose_nodes(node: ast.Module) -> set[int]:
    """Docstrings, and the messages given to a logger (``log.warning("LISTEN unavailable ...")``)."""
    ids = set()
    for item in ast.walk(node):
        if isinstance(item, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = item.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
        elif (
            isinstance(item, ast.Call)
            and isinstance(item.func, ast.Attribute)
            and item.func.attr in LOG_METHODS
            and item.args
        ):
            message = item.args[1] if item.func.attr == "log" and len(item.args) > 1 else item.args[0]
            for part in ast.walk(message):
                ids.add(id(part))
    return ids


def sql_literals(node: ast.Module) -> list[tuple[int, str]]:
    skip = prose_nodes(node)
    found = []
    for item in ast.walk(node):
        if isinstance(item, ast.Constant) and isinstance(item.value, str) and id(item) not in skip:
            if SQL_START.match(item.value):
                found.append((item.lineno, item.value.strip().splitlines()[0][:70]))
    return sorted(found)


# -- the checks themselves ---------------------------------------------------


def test_the_scan_sees_the_whole_code_base() -> None:
    names = modules()
    assert len(names) > 50
    for package in PACKAGES.values():
        assert sum(n == package or n.startswith(package + ".") for n in names) >= 3, package
    for name in ("evstore.core.store.postgres", "evstore.core.db", "evstore.cli.app", "evstore.workers"):
        assert name in names
    assert sum(len(t) for t in graph().values()) > 100  # imports were found


def test_no_import_cycles() -> None:
    edges = graph()
    found = cycles(edges)
    assert not found, "import cycles:\n" + "\n".join(describe(c, edges) for c in found)


def test_imports_point_from_cli_to_schedules_to_workers_to_core() -> None:
    found = violations(_crosses_layers)
    assert not found, "imports against cli -> schedules -> workers -> core:\n" + "\n".join(found)


def test_inside_core_features_to_store_to_base() -> None:
    found = violations(_crosses_core)
    assert not found, (
        "inside core: base modules import no feature package nor store/; store/ no feature package;\n"
        f"feature packages use the contract store.persistence, not {CONCRETE_STORE}:\n" + "\n".join(found)
    )


def test_no_long_files_in_core() -> None:
    long = []
    for module in modules().values():
        if module.name.startswith("evstore.core"):
            lines = len(module.path.read_text().splitlines())
            if lines > MAX_CORE_LINES:
                long.append(f"{module.rel}: {lines} lines")
    assert not long, f"files under core/ longer than {MAX_CORE_LINES} lines:\n" + "\n".join(long)


def test_no_sql_statements_in_python() -> None:
    found = []
    for name, module in modules().items():
        for line, text in sql_literals(tree(name)):
            found.append(f"{module.rel}:{line}: {text}")
    assert not found, "SQL in Python (move it to a core/sql/*.sql block, load with db.sql):\n" + "\n".join(
        found
    )


PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def sql_blocks(stem: str) -> dict[str, str]:
    """The named blocks of core/sql/<stem>.sql as the code loads them ({} without such a file)."""
    return blocks(f"{stem}.sql") if (ROOT / "core" / "sql" / f"{stem}.sql").exists() else {}


def literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def sql_wrappers(node: ast.Module) -> dict[str, str]:
    """Functions whose last statement is ``return x.sql("file", name, ...)``: name -> file."""
    found = {}
    for item in ast.walk(node):
        if isinstance(item, ast.FunctionDef) and isinstance(item.body[-1], ast.Return):
            call = item.body[-1].value
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "sql"
                and len(call.args) >= 2
                and literal(call.args[0]) is not None
                and isinstance(call.args[1], ast.Name)
            ):
                found[item.name] = literal(call.args[0])
    return found  # type: ignore[return-value]


def sql_calls(node: ast.Module) -> Iterator[tuple[int, str, str, set[str] | None]]:
    """(line, file, block, fragment keywords or None for **kwargs) of every ``x.sql("file", "block")``
    and every ``x._sql("block")`` of a wrapper defined in the same module."""
    wrappers = sql_wrappers(node)
    for item in ast.walk(node):
        if not (isinstance(item, ast.Call) and isinstance(item.func, ast.Attribute)):
            continue
        if item.func.attr == "sql" and len(item.args) >= 2:
            names = [literal(item.args[0]), literal(item.args[1])]
        elif item.func.attr in wrappers and item.args:
            names = [wrappers[item.func.attr], literal(item.args[0])]
        else:
            continue
        file, block = names
        if file is not None and block is not None:
            keywords = {k.arg for k in item.keywords}
            yield item.lineno, file, block, None if None in keywords else keywords  # type: ignore[misc]


def test_every_named_sql_block_asked_for_exists_with_its_fragments() -> None:
    problems = []
    calls = 0
    for name, module in modules().items():
        for line, file, block, keywords in sql_calls(tree(name)):
            calls += 1
            where = f"{module.rel}:{line}: sql({file!r}, {block!r})"
            text = sql_blocks(file).get(block)
            if text is None:
                problems.append(f"{where}: no block -- name: {block} in core/sql/{file}.sql")
                continue
            wanted = set(PLACEHOLDER.findall(text)) - {"schema"}
            if keywords is not None and keywords != wanted:
                problems.append(
                    f"{where}: fragments given {sorted(keywords)}, the block has {sorted(wanted)}"
                )
    assert calls > 50, "fewer db.sql(...) calls than expected: is the scan broken?"
    assert not problems, "db.sql calls that do not match core/sql/*.sql:\n" + "\n".join(problems)


# -- the checkers catch what they should (so a green run means something) ------


def test_sql_detector_finds_literals_and_f_string_parts_not_docstrings_or_log_messages() -> None:
    source = '''
"""SELECT in a module docstring is prose."""
def f(table):
    """UPDATE in a function docstring too."""
    a = "SELECT 1"
    b = f"INSERT INTO {table} VALUES (1)"
    c = "\\n    WITH x AS (SELECT 1) SELECT * FROM x"
    d = "COMMIT"
    e = "select 1"
    g = "SETTINGS are not SQL"
    h = "Selection"
    log.warning("LISTEN unavailable, polling instead: %s", e)
    cur.execute(f"DELETE FROM {table}")
'''
    lines = [line for line, _ in sql_literals(ast.parse(source))]
    assert lines == [5, 6, 7, 8, 13]


def test_cycle_finder_sees_function_level_and_type_checking_cycles() -> None:
    assert cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c", "a"]]
    assert cycles({"a": ["b"], "b": []}) == []
    module = Module("evstore.core.x", ROOT / "core" / "x.py", False)
    source = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from .store.postgres import PostgreSQLEventStore
def f():
    from . import db
    import evstore.workers.engine
"""
    names = {name for name, _ in imported_names(module, ast.parse(source))}
    assert {"evstore.core.store.postgres", "evstore.core.db", "evstore.workers.engine"} <= names
    edges = {"a": {"b": 3, "x": 1}, "b": {"a": 7}, "x": {"b": 2}}
    assert [describe(c, edges) for c in cycles(edges)] == ["a (line 3) -> b (line 7) -> a"]


def test_layer_rules_flag_imports_against_the_arrows() -> None:
    assert _crosses_layers("evstore.core.db", "evstore.workers.engine")
    assert _crosses_layers("evstore.workers.engine", "evstore.schedules.service")
    assert _crosses_layers("evstore.schedules.service", "evstore.cli.app")
    assert not _crosses_layers("evstore.cli.app", "evstore.core.db")
    assert _crosses_core("evstore.core.db", "evstore.core.store.reads")
    assert _crosses_core("evstore.core.store.reads", "evstore.core.reader.reader")
    assert _crosses_core("evstore.core.reader.groups", "evstore.core.store.postgres")
    assert _crosses_core("evstore.core.jobs.claims", "evstore.core")
    assert not _crosses_core("evstore.core.reader.groups", "evstore.core.store.persistence")


def test_sql_call_finder_reads_file_block_and_fragments() -> None:
    source = """
db.sql("store", "read_all", filters=f, limit=l)
store.db.sql("reader", "listen")
db.sql("archive", "x", **parts)
db.sql(name, "dynamic")
"""
    found = [(file, block, keywords) for _, file, block, keywords in sql_calls(ast.parse(source))]
    assert found == [
        ("store", "read_all", {"filters", "limit"}),
        ("reader", "listen", set()),
        ("archive", "x", None),
    ]
    assert "read_all" in sql_blocks("store") and "--" not in sql_blocks("store")["read_all"]


def test_sql_call_finder_follows_one_line_wrappers() -> None:
    source = """
class Groups:
    def _sql(self, name):
        return self.db.sql("reader", name)
    def join(self, dynamic):
        self._sql("join_member")
        self._sql(dynamic)
"""
    found = [(file, block, keywords) for _, file, block, keywords in sql_calls(ast.parse(source))]
    assert found == [("reader", "join_member", set())]
