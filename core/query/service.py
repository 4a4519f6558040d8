"""EventQueryService: criteria queries, full-text search, a never-stale cache, explain.

A query reads, like ``read_all``, only events of transactions below the
global-order horizon, computed by the page's own statement in its snapshot
(page_at_horizon), under a statement timeout; pages are keyset pages of the global order
``(transaction_id, global_position)`` behind an opaque cursor. Results are the
store's EventRecords, decoded and checksum-verified by ``store.decode_row``.
See docs/query.md for what each predicate can and cannot see.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import errors as pgerrors

from ..db import HORIZON_READS
from ..errors import QueryError, QueryLimitError
from ..store import hooks
from ..store.persistence import EventRecord, EventStore, PartitionInfo
from .cache import QueryCache
from .compiler import XID8, PredicateCompiler, compile_sql, events_table
from .criteria import EventSearchCriteria, Leaf, Predicate, has_data_leaf
from .cursor import decode_cursor, encode_cursor
from .rows import columns as _columns
from .rows import decoded_documents


@dataclass
class QueryMetrics:
    query_duration_ms: float = 0.0
    rows_examined: int = 0
    rows_returned: int = 0
    compressed_rechecked: int = 0
    partitions_scanned: list[str] = field(default_factory=list)
    partitions_pruned: list[str] = field(default_factory=list)
    cache_hit: bool = False
    cache_hit_rate: float = 0.0
    plan_summary: str = ""
    horizon: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class QueryResult:
    events: list[EventRecord]
    next_cursor: str | None
    criteria: EventSearchCriteria

    def __iter__(self) -> Any:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)


class EventQueryService:
    """Queries over one store (``EventQueryService(store)``); thread-safe."""

    def __init__(self, store: EventStore, *,
                 field_rewriter: Callable[[Leaf], Leaf | None] | None = None) -> None:
        self.store = store
        self.db = store.db
        settings = store.settings
        self.compiler = PredicateCompiler(settings.text_search_config)
        self.cache = QueryCache(settings.query_cache_size, settings.cache_ttl)
        self.table = events_table(self.db.schema)
        # The privacy hook (docs/query.md): a leaf on an encrypted field is
        # rewritten to a leaf on its blind index, or refused.
        self.field_rewriter = field_rewriter
        self._here = self.db.sql("query", "statement_horizon").rstrip(";")
        self._parts: tuple[float, list[PartitionInfo]] | None = None

    # -- the public API --------------------------------------------------------------

    def query_events(self, criteria: EventSearchCriteria, *, plan: bool = True,
                     use_cache: bool = True) -> tuple[QueryResult, QueryMetrics]:
        started = time.perf_counter()
        if not isinstance(criteria, EventSearchCriteria):
            raise QueryError("query_events takes an EventSearchCriteria")
        criteria = self._rewrite(criteria)
        self._check(criteria)
        key = self.cache.key(criteria)
        with self.db.connection() as conn:
            # The horizon is read first only to judge a kept entry; otherwise the page's
            # own statement computes it in the page's snapshot (page_at_horizon).
            horizon: int | None = None
            hit = None
            if use_cache and self.cache.holds(key):
                horizon = self.db.horizon(conn)
                hit = self.cache.get(key, horizon, lambda old, new: self._unchanged(conn, old, new))
            elif use_cache:
                self.cache.miss()
            if hit is not None:
                result, metrics = hit
                metrics = replace(metrics, cache_hit=True, cache_hit_rate=self.cache.hit_rate,
                                  query_duration_ms=(time.perf_counter() - started) * 1000)
                # each access logged, consent applied (issue 11); the cache keeps what is stored
                return replace(result, events=hooks.observe(self.store, "query", result.events)), metrics
            simple = criteria.predicate is None or not has_data_leaf(criteria.predicate)
            for final in [False] * (HORIZON_READS - 1) + [True]:  # read again while _Unsettled
                metrics = QueryMetrics(horizon=horizon or 0)
                try:
                    if simple:  # one page, one round trip: the timeout, (the plan,) the page
                        events, next_cursor = self._one_page(conn, criteria, horizon, metrics, plan, final)
                    else:
                        with conn.pipeline(), self._snapshot(conn):
                            events, next_cursor = self._run(conn, criteria, horizon, metrics, plan, final)
                    break
                except _Unsettled:
                    continue
        self._partitions(criteria, metrics)
        result = QueryResult(events, next_cursor, criteria)
        metrics.rows_returned = len(events)
        if use_cache:
            self.cache.put(key, metrics.horizon, result, metrics)
        metrics.cache_hit_rate = self.cache.hit_rate
        metrics.query_duration_ms = (time.perf_counter() - started) * 1000
        return replace(result, events=hooks.observe(self.store, "query", result.events)), metrics

    def iter_events(self, criteria: EventSearchCriteria) -> Any:
        """Every matching event, page after page (bounded memory)."""
        while True:
            result, _ = self.query_events(criteria, plan=False, use_cache=False)
            yield from result.events
            if result.next_cursor is None:
                return
            criteria = replace(criteria, after=result.next_cursor)

    def search_event_content(self, text: str, event_types: Sequence[str] | None = None, *,
                             limit: int = 20, **criteria: Any) -> list[EventRecord]:
        """Full-text search over data and metadata (websearch syntax), best first.

        ``criteria``: any other EventSearchCriteria field (from_timestamp, user_id, ...).
        """
        return [event for event, _ in self.search_ranked(text, event_types, limit=limit, **criteria)]

    def search_ranked(self, text: str, event_types: Sequence[str] | None = None, *,
                      limit: int = 20, **criteria: Any) -> list[tuple[EventRecord, float]]:
        """Like search_event_content, with each event's rank (ts_rank)."""
        from .search import ranked

        found = ranked(self, text, event_types, limit, criteria)
        events = hooks.observe(self.store, "search", [e for e, _ in found])  # access log (issue 11)
        return [(e, rank) for e, (_, rank) in zip(events, found, strict=True)]

    def invalidate(self, subject: str | None = None) -> int:
        """Drop cached results holding the subject's events (all results: ``None``)."""
        return self.cache.invalidate(subject)

    def explain(self, criteria: EventSearchCriteria, analyze: bool = False) -> Any:
        from .explain import explain

        return explain(self, criteria, analyze)

    def detect_anomalies(self, **kwargs: Any) -> Any:
        from .anomalies import detect_anomalies

        return detect_anomalies(self, **kwargs)

    # -- building and running ------------------------------------------------------

    def statement(self, criteria: EventSearchCriteria, horizon: int | None,
                  after: tuple[int, int] | None, limit: int) -> sa.Select[Any]:
        """The page; ``horizon=None``: bounded by ``h.x`` of page_at_horizon (see page_sql)."""
        t = self.table
        c = t.c
        order = (c.transaction_id, c.global_position)
        terms = self.compiler.where(criteria, t)
        bound = sa.select(_H.c.x).scalar_subquery() if horizon is None \
            else sa.cast(sa.literal(str(horizon)), XID8)
        terms.append(c.transaction_id < bound)
        if after is not None:
            mark = sa.tuple_(sa.cast(sa.literal(str(after[0])), XID8), sa.literal(after[1]))
            position = sa.tuple_(*order)
            terms.append(position > mark if criteria.order == "asc" else position < mark)
        ordering = order if criteria.order == "asc" else tuple(o.desc() for o in order)
        return (sa.select(sa.literal_column(_columns())).select_from(t).where(*terms)
                .order_by(*ordering).limit(limit))

    def page_sql(self, criteria: EventSearchCriteria, horizon: int | None,
                 after: tuple[int, int] | None, limit: int) -> tuple[str, dict[str, Any]]:
        """The page's SQL; with ``horizon=None`` the horizon is computed by the same
        statement, in the snapshot its rows are read in (page_at_horizon)."""
        sql, params = compile_sql(self.statement(criteria, horizon, after, limit))
        if horizon is None:
            sql = self.db.sql("query", "page_at_horizon", horizon=self._here, statement=sql,
                              direction="ASC" if criteria.order == "asc" else "DESC")
        return sql, params

    @staticmethod
    def _at_horizon(rows: list[Any], metrics: QueryMetrics, final: bool) -> list[Any]:
        """page_at_horizon's rows less the horizon (into metrics) and whether it ended (_Unsettled)."""
        if rows[0][-1] and not final:
            raise _Unsettled
        metrics.horizon = int(rows[0][-2])
        return [] if rows[0][0] is None else [row[:-2] for row in rows]

    def _run(self, conn: psycopg.Connection, criteria: EventSearchCriteria, horizon: int | None,
             metrics: QueryMetrics, plan: bool,
             final: bool = True) -> tuple[list[EventRecord], str | None]:
        settings = self.store.settings
        after = decode_cursor(criteria.after, criteria) if criteria.after else None
        predicate = criteria.predicate
        recheck = predicate is not None and has_data_leaf(predicate)
        events: list[EventRecord] = []
        page = min(max(criteria.limit, 100), 5000) if recheck else criteria.limit
        first = True
        while len(events) < criteria.limit:
            want = criteria.limit - len(events) if not recheck else page
            sql, params = self.page_sql(criteria, horizon, after, want)
            if first and plan:
                metrics.plan_summary, scanned = self.plan_summary(conn, sql, params)
                metrics.partitions_scanned = scanned
            first = False
            rows = self._fetch(conn, sql, params)
            if horizon is None:  # the first page: later pages are bounded by the same value
                rows = self._at_horizon(rows, metrics, final)
                horizon = metrics.horizon
            metrics.rows_examined += len(rows)
            if metrics.rows_examined > settings.query_row_budget:
                raise QueryLimitError(
                    f"the query examined more than {settings.query_row_budget:,} rows "
                    "(EVENT_STORE_QUERY_ROW_BUDGET): add a time bound or a narrower filter")
            keep = [True] * len(rows)
            if recheck:
                assert predicate is not None
                keep = self._recheck(conn, predicate, rows, metrics)
            for row, ok in zip(rows, keep, strict=True):
                after = (int(row[9]), int(row[8]))
                if ok:
                    events.append(self.store.decode_row(row))
                    if len(events) == criteria.limit:
                        break
            if len(events) < criteria.limit and len(rows) < want:
                return events, None
        last = events[-1]
        assert last.transaction_id is not None and last.global_position is not None
        return events, encode_cursor(last.transaction_id, last.global_position, criteria)

    def _recheck(self, conn: psycopg.Connection, predicate: Predicate, rows: list[Any],
                 metrics: QueryMetrics) -> list[bool]:
        """Compressed rows were let through by a superset: judge them on their decoded data."""
        keep = [row[11] is None for row in rows]
        docs = decoded_documents(self, rows)
        if not docs:
            return keep
        metrics.compressed_rechecked += len(docs)
        sql, params = compile_sql(self.compiler.recheck(predicate))
        # The documents go as one jsonb parameter, assembled from exact JSON texts.
        params["docs"] = "[" + ",".join(d for _, d in docs) + "]"
        for (ordinal,) in self._fetch(conn, sql, params):
            keep[ordinal] = True
        return keep

    def _unchanged(self, conn: psycopg.Connection, old: int, new: int) -> bool:
        """No event of a transaction in [old, new), and no forget lately: old's result holds."""
        row = None if new < old else conn.execute(
            self.db.sql("query", "events_between"),  # the window: any entry's age, plus skew
            [str(old), str(new), self.cache.ttl + 5.0]).fetchone()
        return row is not None and not row[0]

    def _one_page(self, conn: psycopg.Connection, criteria: EventSearchCriteria,
                  horizon: int | None, metrics: QueryMetrics, plan: bool,
                  final: bool = True) -> tuple[list[EventRecord], str | None]:
        """A query SQL answers alone: the timeout, (the plan,) the page, read after one sync.

        One statement sees one snapshot (the horizon's and the rows', or the horizon
        was read before it), so no transaction is begun: the statements before the
        sync form one implicit transaction, which the timeout (is_local) ends with."""
        after = decode_cursor(criteria.after, criteria) if criteria.after else None
        sql, params = self.page_sql(criteria, horizon, after, criteria.limit)
        explained = None
        try:
            with conn.pipeline():
                conn.execute(self.db.sql("query", "set_timeout"), [str(self.store.settings.query_timeout_ms)])
                if plan:
                    explained = conn.execute(self.db.sql("query", "explain", statement=sql,
                                                         analyze="false"), params, prepare=False)
                page = conn.execute(sql, params, prepare=False)
            rows = page.fetchall()
            if horizon is None:
                rows = self._at_horizon(rows, metrics, final)
        except psycopg.Error as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from exc
        if explained is not None:
            from .explain import summarise

            metrics.plan_summary, metrics.partitions_scanned = summarise((explained.fetchone() or [None])[0])
        metrics.rows_examined = len(rows)
        events = [self.store.decode_row(row) for row in rows]
        if len(events) < criteria.limit:
            return events, None
        last = events[-1]
        assert last.transaction_id is not None and last.global_position is not None
        return events, encode_cursor(last.transaction_id, last.global_position, criteria)

    def _fetch(self, conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> list[Any]:
        try:
            # Never a server-side prepared statement: each plan is made for its values
            # (partition pruning, expression indexes).
            return conn.execute(sql, params, prepare=False).fetchall()
        except psycopg.Error as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    def _translate(self, exc: psycopg.Error) -> BaseException:
        if isinstance(exc, pgerrors.QueryCanceled):
            return QueryLimitError(
                f"the query ran longer than {self.store.settings.query_timeout_ms:,} ms "
                "(EVENT_STORE_QUERY_TIMEOUT_MS): add a time bound or a narrower filter")
        if isinstance(exc, pgerrors.InvalidTextRepresentation | pgerrors.SyntaxError
                      | pgerrors.UndefinedObject | pgerrors.DataException):
            return QueryError(f"the query was refused: {exc.diag.message_primary}")
        return exc

    @contextmanager
    def _snapshot(self, conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
        with self.db.read_only_snapshot(conn):
            conn.execute(self.db.sql("query", "set_timeout"), [str(self.store.settings.query_timeout_ms)])
            yield conn

    def plan_summary(self, conn: psycopg.Connection, sql: str, params: dict[str, Any],
                     analyze: bool = False) -> tuple[str, list[str]]:
        from .explain import summarise

        statement = self.db.sql("query", "explain", statement=sql,
                                analyze="true" if analyze else "false")
        rows = self._fetch(conn, statement, params)
        return summarise(rows[0][0])

    # -- checks -------------------------------------------------------------------------

    def _rewrite(self, criteria: EventSearchCriteria) -> EventSearchCriteria:
        if self.field_rewriter is None or criteria.predicate is None:
            return criteria
        from .criteria import map_leaves

        return replace(criteria, data=None, metadata=None,
                       where=map_leaves(criteria.predicate, self.field_rewriter))

    def _check(self, criteria: EventSearchCriteria) -> None:
        if criteria.event_types:  # a typo in a type filter is an error, never an empty answer
            self.store.check_event_types(criteria.event_types)
        if criteria.predicate is None:
            return
        from .criteria import leaves

        with self.db.connection() as conn:
            for leaf in leaves(criteria.predicate):
                if leaf.op == "jsonpath":
                    try:
                        conn.execute(self.db.sql("query", "check_jsonpath"), [leaf.value[1]])
                    except psycopg.Error as exc:
                        raise QueryError(f"malformed SQL/JSON path {leaf.value[1]!r}: "
                                         f"{exc.diag.message_primary}") from None

    def month_partitions(self) -> list[PartitionInfo]:
        """The store's month partitions, looked up at most every 30 s (metrics only)."""
        cached = self._parts
        if cached is None or time.monotonic() - cached[0] > 30:
            cached = self._parts = (time.monotonic(), self.store.list_partitions())
        return cached[1]

    def _partitions(self, criteria: EventSearchCriteria, metrics: QueryMetrics) -> None:
        parts = self.month_partitions()
        if not metrics.plan_summary:
            metrics.partitions_scanned = [p.name for p in parts if _overlaps(p, criteria)]
        scanned = set(metrics.partitions_scanned)
        metrics.partitions_pruned = [p.name for p in parts if p.name not in scanned]
        if criteria.from_timestamp is None and criteria.to_timestamp is None and len(parts) > 1:
            metrics.warnings.append(
                f"no time bound: the query scanned every month partition ({len(parts)}); "
                "set from_timestamp/to_timestamp to prune months")


_H = sa.table("h", sa.column("x", XID8()))  # page_at_horizon's horizon CTE


class _Unsettled(Exception):
    """The page's horizon was held back by a transaction that has since ended."""


def _overlaps(p: PartitionInfo, criteria: EventSearchCriteria) -> bool:
    low: datetime | None = criteria.from_timestamp
    high: datetime | None = criteria.to_timestamp
    return (low is None or p.range_end > low) and (high is None or p.range_start < high)

