"""Commands on the store itself: init, append, read, read-all, tail, partitions,
verify, health, stats and metrics."""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from evstore.core.errors import EventValidationError
from evstore.core.store.persistence import ANY, NO_STREAM, EventMetadata, EventRecord, Position

from .common import (
    EXIT_FAILED,
    EXIT_INTEGRITY,
    add_group,
    console,
    err_console,
    fail,
    handle_errors,
    human_bytes,
    open_store,
    print_json,
    to_jsonable,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


def _event_row(e: EventRecord) -> list[str]:
    return [
        str(e.global_position), str(e.position), e.stream_id or "", str(e.stream_position),
        e.event_type, e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        json.dumps(e.event_data, ensure_ascii=False)[:60],
    ]


def _events_table(events: list[EventRecord], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("global", "checkpoint", "stream", "pos", "type", "created (UTC)", "data"):
        table.add_column(col, overflow="fold")
    for e in events:
        table.add_row(*_event_row(e))
    return table


def _parse_position(text: str | None) -> Position | None:
    return Position.parse(text) if text else None


def init(
    months_ahead: Annotated[int, typer.Option(help="Monthly partitions to create ahead.")] = 3,
) -> None:
    """Create (or upgrade) the event store's tables and partitions. Idempotent."""
    with open_store(check_schema=False) as store:
        store.initialize_schema(months_ahead=months_ahead)
        console.print(
            f"schema [bold]{store.schema}[/] ready at migration {store.schema_version()}, "
            f"{len(store.list_partitions())} partitions"
        )


def _record_from_line(obj: Any, number: int) -> tuple[str, EventRecord, Any]:
    if not isinstance(obj, dict):
        raise EventValidationError(f"line {number}: expected a JSON object")
    missing = [k for k in ("aggregate_id", "aggregate_type", "event_type") if k not in obj]
    if missing:
        raise EventValidationError(f"line {number}: missing field(s) {', '.join(missing)}")
    stream_id = obj.get("stream_id") or f"{obj['aggregate_type']}-{obj['aggregate_id']}"
    kwargs: dict[str, Any] = {}
    try:
        if "event_id" in obj:
            kwargs["event_id"] = uuid.UUID(str(obj["event_id"]))
        if "created_at" in obj:
            kwargs["created_at"] = datetime.fromisoformat(str(obj["created_at"]))
    except ValueError as exc:
        raise EventValidationError(f"line {number}: {exc}") from None
    for key in ("aggregate_version", "event_version"):
        if key in obj:
            kwargs[key] = obj[key]
    record = EventRecord(
        aggregate_id=str(obj["aggregate_id"]),
        aggregate_type=str(obj["aggregate_type"]),
        event_type=obj["event_type"],
        event_data=obj.get("event_data", obj.get("data", {})),
        metadata=EventMetadata.from_dict(obj.get("metadata")),
        **kwargs,
    )
    expected = obj.get("expected_version")
    if expected == "any":
        expected = ANY
    elif expected == "no_stream":
        expected = NO_STREAM
    return stream_id, record, expected


def append(
    source: Annotated[str, typer.Argument(help="A file of JSON lines, or - for standard input.")] = "-",
    as_json: JsonOpt = False,
) -> None:
    """Append events from JSON lines, one event per line.

    Each line: {"aggregate_type", "aggregate_id", "event_type", "event_data", and
    optionally "stream_id" (default "<type>-<id>"), "metadata", "event_id",
    "created_at" (ISO 8601 with offset), "aggregate_version", "expected_version"
    (a number, "any" or "no_stream")}. Every line is checked first; if any is
    malformed, each problem is reported with its line number and nothing is written.
    Consecutive lines of one stream are appended together, atomically.
    """
    from evstore.core.store.validation import validate_batch

    stream = sys.stdin if source == "-" else Path(source).open(encoding="utf-8")
    parsed: list[tuple[str, EventRecord, Any, int]] = []
    problems: list[str] = []
    with stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                stream_id, record, expected = _record_from_line(obj, number)
                validate_batch(stream_id, [record])
                parsed.append((stream_id, record, expected, number))
            except json.JSONDecodeError as exc:
                problems.append(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
            except EventValidationError as exc:
                msg = str(exc).replace("event #0: ", "")
                problems.append(msg if msg.startswith("line ") else f"line {number}: {msg}")
    if problems:
        for p in problems[:50]:
            err_console.print(f"[red]{p}[/]", highlight=False)
        raise fail(f"{len(problems)} malformed line(s); nothing was appended", 2)
    if not parsed:
        raise fail("no events in the input", 2)
    groups: list[tuple[str, list[EventRecord], Any, int]] = []
    for stream_id, record, expected, number in parsed:
        if groups and groups[-1][0] == stream_id and expected is None:
            groups[-1][1].append(record)
        else:
            groups.append((stream_id, [record], expected, number))
    results = []
    with open_store() as store:
        with _progress(disable=as_json) as progress:
            task = progress.add_task("appending", total=len(parsed))
            for stream_id, records, expected, number in groups:
                try:
                    results.append(store.append_events(stream_id, records, expected_version=expected))
                except EventValidationError as exc:
                    raise EventValidationError(f"line {number}: {exc}") from None
                progress.advance(task, len(records))
    if as_json:
        print_json({"appended": len(parsed), "appends": [to_jsonable(r) for r in results]})
    else:
        console.print(f"appended {len(parsed)} events in {len(results)} appends")


def read(
    stream_id: Annotated[str, typer.Argument(help="The stream to read.")],
    from_version: Annotated[int | None, typer.Option("--from", help="First version to read.")] = None,
    max_count: Annotated[int | None, typer.Option("--max", help="At most this many events.")] = None,
    backwards: Annotated[bool, typer.Option(help="Newest first.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Read one stream's events in stream order."""
    with open_store() as store:
        events = store.read_stream(stream_id, from_version, max_count, backwards)
        if as_json:
            print_json(events)
            return
        if not events:
            raise fail(f"stream {stream_id!r} has no events", EXIT_FAILED)
        console.print(_events_table(events, f"{stream_id} (version {store.get_stream_version(stream_id)})"))


TypeOpt = Annotated[list[str] | None, typer.Option("--type", help="Only these event types.")]
AggOpt = Annotated[
    list[str] | None, typer.Option("--aggregate-type", help="Only these aggregate types.")
]


def read_all(
    after: Annotated[str | None, typer.Option(help="Checkpoint to read after ('tx:pos').")] = None,
    limit: Annotated[int, typer.Option(help="Page size.")] = 100,
    event_type: TypeOpt = None,
    aggregate_type: AggOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read one page of the global order after a checkpoint; prints the next checkpoint."""
    with open_store() as store:
        page = store.read_all(_parse_position(after), limit, event_type, aggregate_type)
    if as_json:
        print_json({"events": page.events, "checkpoint": str(page.checkpoint), "at_end": page.at_end})
        return
    console.print(_events_table(page.events, f"{len(page.events)} events"))
    console.print(f"next checkpoint: [bold]{page.checkpoint}[/]" + ("  (at the head)" if page.at_end else ""))


def tail(
    after: Annotated[str | None, typer.Option(help="Start after this checkpoint ('tx:pos').")] = None,
    from_start: Annotated[bool, typer.Option("--from-start", help="Start at the beginning.")] = False,
    event_type: TypeOpt = None,
    aggregate_type: AggOpt = None,
    interval: Annotated[float, typer.Option(help="Seconds between polls when idle.")] = 0.5,
    max_events: Annotated[int | None, typer.Option(help="Stop after this many events.")] = None,
    idle_timeout: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without new events.")
    ] = None,
) -> None:
    """Follow the global order: print events as JSON lines as they are committed.

    Starts at the current head unless --after or --from-start is given. Every
    line carries the event's checkpoint; pass the last one to --after to resume.
    """
    seen = 0
    with open_store() as store:
        position = _parse_position(after)
        if position is None and not from_start:
            while True:  # skip to the head
                page = store.read_all(position, 5000, event_type, aggregate_type)
                position = page.checkpoint
                if page.at_end:
                    break
        idle_since = time.monotonic()
        while True:
            page = store.read_all(position, 500, event_type, aggregate_type)
            for e in page.events:
                print_json({"checkpoint": str(e.position), **to_jsonable(e)})
                seen += 1
                if max_events is not None and seen >= max_events:
                    return
            position = page.checkpoint
            if page.events:
                idle_since = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                return
            if page.at_end:
                time.sleep(interval)


def partitions_list(
    exact: Annotated[bool, typer.Option(help="Count rows exactly (slower) instead of estimates.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List partitions with their row counts and sizes."""
    with open_store() as store:
        parts = store.list_partitions(exact=exact)
    if as_json:
        print_json(parts)
        return
    table = Table(title=f"{len(parts)} partitions", title_justify="left")
    for col, just in (("month", "left"), ("partition", "left"), ("rows", "right"), ("size", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for p in parts:
        table.add_row(p.month, p.name, f"{p.row_count:,}", human_bytes(p.total_bytes))
    console.print(table)


def partitions_ensure(
    months_ahead: Annotated[int, typer.Option(help="Months after the current one.")] = 3,
) -> None:
    """Create this month's partition and the next ones where missing."""
    with open_store() as store:
        created = store.create_partitions_ahead(months_ahead)
    console.print(
        f"created {len(created)} partition(s)"
        + (": " + ", ".join(m.strftime("%Y-%m") for m in created) if created else "")
    )


def verify(
    from_position: Annotated[int | None, typer.Option("--from", help="First global position.")] = None,
    to_position: Annotated[int | None, typer.Option("--to", help="Last global position.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute every event's SHA-256 checksum in a range; exit 5 on any mismatch."""
    with open_store() as store:
        total = store.metrics().events if not as_json else None
        with _progress(disable=as_json) as progress:
            task = progress.add_task("verifying", total=total)
            report = store.verify(from_position, to_position, progress=lambda n: progress.advance(task, n))
    if as_json:
        print_json({"checked": report.checked, "ok": report.ok, "mismatches": report.mismatches})
    else:
        if report.ok:
            console.print(f"[green]ok[/]: {report.checked:,} events verified, no mismatch")
        else:
            table = Table(title=f"{len(report.mismatches)} checksum mismatches", title_justify="left")
            for col in ("global", "event id", "stream", "stored", "computed"):
                table.add_column(col)
            for m in report.mismatches[:100]:
                table.add_row(str(m.global_position), str(m.event_id), m.stream_id,
                              m.stored[:16], m.computed[:16])
            console.print(table)
    if not report.ok:
        raise typer.Exit(EXIT_INTEGRITY)


def health(as_json: JsonOpt = False) -> None:
    """Check the database, the schema and the partitions ahead; exit 1 when unhealthy."""
    with open_store(check_schema=False) as store:
        report = store.health()
    if as_json:
        print_json({"ok": report.ok, "checks": report.checks})
    else:
        table = Table(title="health", title_justify="left")
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail")
        for c in report.checks:
            table.add_row(c.name, "[green]ok[/]" if c.ok else "[red]FAIL[/]", c.detail)
        console.print(table)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


def stats(as_json: JsonOpt = False) -> None:
    """Event counts, sizes and compression of the store."""
    with open_store() as store:
        m = store.metrics()
    if as_json:
        print_json({**to_jsonable(m), "compression_ratio": m.compression_ratio})
        return
    table = Table(title="store", title_justify="left", show_header=False)
    table.add_column()
    table.add_column(justify="right")
    table.add_row("events", f"{m.events:,}")
    table.add_row("streams", f"{m.streams:,}")
    table.add_row("partitions", str(m.partitions))
    table.add_row("on disk", human_bytes(m.total_bytes))
    table.add_row("payloads (original)", human_bytes(m.original_payload_bytes))
    table.add_row("payloads (stored)", human_bytes(m.stored_payload_bytes))
    table.add_row("compressed events", f"{m.compressed_events:,}")
    table.add_row("compression ratio", f"{m.compression_ratio:.2f}")
    console.print(table)
    types = Table(title="events by type", title_justify="left")
    types.add_column("type")
    types.add_column("events", justify="right")
    for name, count in m.events_by_type.items():
        types.add_row(name, f"{count:,}")
    console.print(types)


def metrics() -> None:
    """Store metrics in the Prometheus text format (for a scrape or a textfile collector)."""
    from evstore.core.store.metrics import render_store_metrics

    with open_store() as store:
        sys.stdout.write(render_store_metrics(store))


def _progress(disable: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=err_console, disable=disable, transient=False,
    )


def register(app: typer.Typer) -> None:
    for func in (init, append, read, read_all, tail, verify, health, stats, metrics):
        app.command(func.__name__.replace("_", "-"))(handle_errors(func))
    add_group(app, "partitions", "Monthly partitions of the events table.",
              {"list": partitions_list, "ensure": partitions_ensure})
