"""``evstore query``: find events by criteria and a filter expression; ``search``, ``anomalies``, ``explain``.

    evstore query --type UserCreated --from 2026-01-01 --where 'data.email == "ada@example.com"'
    evstore query search "ada@example.com" --type UserCreated
    evstore query anomalies --window 7d --bucket 5m --by metadata.user_id
    evstore query explain --where 'metadata.source == "import"' --analyze

See docs/query.md.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table

from .common import console, handle_errors, open_store, plain, print_json, to_jsonable

Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
Types = Annotated[list[str] | None, typer.Option("--type", "-t", help="Event type (repeat for several).")]
_SPAN = re.compile(r"(\d+)\s*([smhdw])\Z")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_span(text: str, option: str) -> timedelta:
    m = _SPAN.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"{option} must be a span like 30s, 5m, 2h, 7d or 1w (got {text!r})")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def parse_time(text: str | None, option: str) -> datetime | None:
    """An ISO date or time (UTC unless it says otherwise), or a span back from now ('7d')."""
    if text is None:
        return None
    if _SPAN.match(text.strip()):
        return datetime.now(UTC) - parse_span(text, option)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{option} must be an ISO date/time (2026-01-31, 2026-01-31T12:00) "
                         f"or a span back from now (7d) (got {text!r})") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def build_criteria(types: list[str] | None = None, aggregate_ids: list[str] | None = None,
                   aggregate_types: list[str] | None = None, streams: list[str] | None = None,
                   user: str | None = None, correlation: str | None = None,
                   causation: str | None = None, since: str | None = None, until: str | None = None,
                   where: str | None = None, limit: int = 50, order: str = "asc",
                   after: str | None = None) -> Any:
    from evstore.core.query import EventSearchCriteria
    from evstore.core.query.where import parse_where

    return EventSearchCriteria(
        event_types=types or None, aggregate_ids=aggregate_ids or None,
        aggregate_types=aggregate_types or None, stream_ids=streams or None, user_id=user,
        correlation_id=correlation, causation_id=causation,
        from_timestamp=parse_time(since, "--from"), to_timestamp=parse_time(until, "--to"),
        where=parse_where(where) if where is not None else None, limit=limit, order=order,
        after=after)


AggIds = Annotated[list[str] | None, typer.Option("--aggregate-id", help="Aggregate id (repeatable).")]
AggTypes = Annotated[list[str] | None, typer.Option("--aggregate-type", help="Aggregate type (repeatable).")]
Streams = Annotated[list[str] | None, typer.Option("--stream", help="Stream id (repeatable).")]
User = Annotated[str | None, typer.Option("--user", help="metadata.user_id equals this.")]
Correlation = Annotated[str | None, typer.Option("--correlation", help="metadata.correlation_id.")]
Causation = Annotated[str | None, typer.Option("--causation", help="metadata.causation_id.")]
Since = Annotated[str | None, typer.Option("--from", help="From this time (inclusive): ISO or '7d'.")]
Until = Annotated[str | None, typer.Option("--to", help="Before this time (exclusive): ISO or '1d'.")]
Where = Annotated[str | None, typer.Option(
    "--where", "-w", help='A filter: data.email == "a@b.c" and not metadata.source == "import".')]
Limit = Annotated[int, typer.Option("--limit", "-n", help="At most this many events (1-100000).")]
Order = Annotated[str, typer.Option("--order", help="asc (oldest first) or desc.")]
After = Annotated[str | None, typer.Option("--after", help="The cursor a previous page printed.")]


def _event_row(e: Any) -> dict[str, Any]:
    return {"global_position": e.global_position, "created_at": e.created_at.isoformat(),
            "event_type": e.event_type, "stream_id": e.stream_id, "aggregate_id": e.aggregate_id,
            "event_id": str(e.event_id), "metadata": e.metadata.to_dict(), "data": e.event_data}


def _table(title: str, events: list[Any], ranks: list[float] | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("position", "created (UTC)", "type", "stream", "user", "data"):
        table.add_column(col, overflow="fold")
    if ranks is not None:
        table.add_column("rank")
    for i, e in enumerate(events):
        import json

        data = json.dumps(e.event_data, ensure_ascii=False)
        row = [str(e.global_position), e.created_at.strftime("%Y-%m-%d %H:%M:%S"), plain(e.event_type),
               plain(e.stream_id), plain(e.metadata.user_id or "-"),
               plain(data if len(data) <= 80 else data[:77] + "...")]
        if ranks is not None:
            row.append(f"{ranks[i]:.3f}")
        table.add_row(*row)
    return table


def query(ctx: typer.Context, types: Types = None, aggregate_id: AggIds = None,
          aggregate_type: AggTypes = None, stream: Streams = None, user: User = None,
          correlation: Correlation = None, causation: Causation = None, since: Since = None,
          until: Until = None, where: Where = None, limit: Limit = 50, order: Order = "asc",
          after: After = None, as_json: Json = False) -> None:
    """Events matching criteria and a --where filter, in the global order, a page at a time."""
    if ctx.invoked_subcommand is not None:
        return
    from evstore.core.query import EventQueryService

    criteria = build_criteria(types, aggregate_id, aggregate_type, stream, user, correlation,
                              causation, since, until, where, limit, order, after)
    with open_store() as store:
        result, metrics = EventQueryService(store).query_events(criteria)
    if as_json:
        print_json({"events": [_event_row(e) for e in result.events],
                    "next_cursor": result.next_cursor, "metrics": to_jsonable(metrics)})
        return
    console.print(_table(f"{len(result.events)} events", result.events))
    _print_metrics(metrics)
    if result.next_cursor:
        console.print(plain(f"next page: --after {result.next_cursor}"))


def _print_metrics(m: Any) -> None:
    console.print(plain(
        f"{m.query_duration_ms:.1f} ms, {m.rows_examined:,} rows examined, "
        f"{len(m.partitions_scanned)} month partitions scanned, {len(m.partitions_pruned)} pruned"
        + (", from the cache" if m.cache_hit else "")))
    for w in m.warnings:
        console.print(plain(f"note: {w}"), style="yellow")


def search(text: Annotated[str, typer.Argument(help='Words, "a phrase", or, -word (web search syntax).')],
           types: Types = None, since: Since = None, until: Until = None,
           limit: Annotated[int, typer.Option("--limit", "-n", help="Best N (1-10000).")] = 20,
           as_json: Json = False) -> None:
    """Full-text search over event data and metadata, best first."""
    from evstore.core.query import EventQueryService

    extra = {k: v for k, v in (("from_timestamp", parse_time(since, "--from")),
                               ("to_timestamp", parse_time(until, "--to"))) if v is not None}
    with open_store() as store:
        hits = EventQueryService(store).search_ranked(text, types or None, limit=limit, **extra)
    if as_json:
        print_json([{**_event_row(e), "rank": r} for e, r in hits])
        return
    console.print(_table(f"{len(hits)} events for {text!r}", [e for e, _ in hits], [r for _, r in hits]))


def anomalies(window: Annotated[str, typer.Option(help="How far back: 1d, 7d, 2w.")] = "7d",
              bucket: Annotated[str, typer.Option(help="Counting bucket: 5m, 15m, 1h.")] = "5m",
              by: Annotated[str, typer.Option(
                  help="event_type, aggregate, or metadata.<field> (e.g. metadata.user_id).")] = "event_type",
              threshold: Annotated[float, typer.Option(help="Robust z-score to flag.")] = 5.0,
              as_json: Json = False) -> None:
    """Bursts and drops of event rates against a median/MAD baseline of the same time of day."""
    from evstore.core.query import EventQueryService

    with open_store() as store:
        found = EventQueryService(store).detect_anomalies(
            window=parse_span(window, "--window"), bucket=parse_span(bucket, "--bucket"), by=by,
            threshold=threshold)
    if as_json:
        print_json([{**to_jsonable(a), "bucket": a.bucket.total_seconds(), "explanation": a.explanation}
                    for a in found])
        return
    if not found:
        console.print("no anomalies")
    for a in found:
        console.print(plain(a.explanation), style="red" if a.kind == "burst" else "yellow")


def explain(types: Types = None, aggregate_id: AggIds = None, aggregate_type: AggTypes = None,
            stream: Streams = None, user: User = None, correlation: Correlation = None,
            causation: Causation = None, since: Since = None, until: Until = None,
            where: Where = None, limit: Limit = 50, order: Order = "asc",
            analyze: Annotated[bool, typer.Option("--analyze", help="Run it (EXPLAIN ANALYZE).")] = False,
            as_json: Json = False) -> None:
    """The query's plan, the month partitions it opens, and index suggestions."""
    from evstore.core.query import EventQueryService

    criteria = build_criteria(types, aggregate_id, aggregate_type, stream, user, correlation,
                              causation, since, until, where, limit, order)
    with open_store() as store:
        report = EventQueryService(store).explain(criteria, analyze=analyze)
    if as_json:
        print_json(to_jsonable(report))
        return
    console.print(plain(report.text()))


def indexes(fulltext: Annotated[bool, typer.Option(
                "--fulltext/--no-fulltext",
                help="Create (or drop) the optional full-text index (EVENT_STORE_TEXT_SEARCH_CONFIG).")],
            ) -> None:
    """The optional full-text index: built on every month partition, cloned onto new ones."""
    with open_store() as store:
        name = "create_fulltext_index" if fulltext else "drop_fulltext_index"
        with store.db.connection() as conn:
            conn.execute(store.db.sql("query", name, config=store.settings.text_search_config))
    console.print("full-text index " + ("created" if fulltext else "dropped"))


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Find events: criteria and filters, full-text search, anomalies, plans.",
                        invoke_without_command=True, no_args_is_help=False)
    group.callback()(handle_errors(query))
    for name, func in (("search", search), ("anomalies", anomalies), ("explain", explain),
                       ("indexes", indexes)):
        group.command(name)(handle_errors(func))
    app.add_typer(group, name="query")
