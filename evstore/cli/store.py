"""Commands on the store itself: init, append, read, read-all, tail, partitions,
verify, health, stats and metrics."""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from evstore.core.errors import EventValidationError
from evstore.core.store.persistence import ANY, NO_STREAM, EventMetadata, EventRecord, Position

from .common import (
    EXIT_FAILED,
    EXIT_INTEGRITY,
    EXIT_USAGE,
    add_group,
    check_range,
    console,
    err_console,
    escape,
    fail,
    handle_errors,
    human_bytes,
    open_store,
    plain,
    print_json,
    to_jsonable,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


# Most events one page of read-all may ask for (the store pages beyond it).
MAX_PAGE = 10_000
MAX_MONTHS_AHEAD = 120


def _event_row(e: EventRecord) -> list[Text]:
    """One event as table cells: stored text is shown as text, never as markup."""
    return [plain(v) for v in (
        e.global_position, e.position, e.stream_id or "", e.stream_position,
        e.event_type, e.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        json.dumps(e.event_data, ensure_ascii=False)[:60],
    )]


def _events_table(events: list[EventRecord], title: str) -> Table:
    table = Table(title=plain(title), title_justify="left")
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
    check_range("--months-ahead", months_ahead, minimum=0, maximum=MAX_MONTHS_AHEAD)
    with open_store(check_schema=False) as store:
        store.initialize_schema(months_ahead=months_ahead)
        console.print(
            f"schema [bold]{escape(store.schema)}[/] ready at migration {store.schema_version()}, "
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

    parsed: list[tuple[str, EventRecord, Any, int]] = []
    problems: list[str] = []
    with _open_source(source) as stream:
        for number, line in _lines(stream, source):
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
                problems.append(_line_problem(exc, number))
    if problems:
        _refuse(problems)
    if not parsed:
        raise fail("no events in the input", EXIT_USAGE)
    groups: list[tuple[str, list[EventRecord], Any, list[int]]] = []
    for stream_id, record, expected, number in parsed:
        if groups and groups[-1][0] == stream_id and expected is None:
            groups[-1][1].append(record)
            groups[-1][3].append(number)
        else:
            groups.append((stream_id, [record], expected, [number]))
    results = []
    with open_store() as store:
        # Every check an append makes, on every batch, before the first write:
        # a line that cannot be stored (a lone surrogate, a NUL in the data)
        # refuses the whole input, whatever its place in it.
        for stream_id, records, _expected, numbers in groups:
            try:
                store.validate_events(stream_id, records)
            except EventValidationError as exc:
                problems.append(_line_problem(exc, numbers[exc.index or 0]))
        if problems:
            _refuse(problems)
        with _progress(disable=as_json) as progress:
            task = progress.add_task("appending", total=len(parsed))
            for stream_id, records, expected, numbers in groups:
                try:
                    results.append(store.append_events(stream_id, records, expected_version=expected))
                except EventValidationError as exc:
                    raise EventValidationError(_line_problem(exc, numbers[exc.index or 0])) from None
                progress.advance(task, len(records))
    if as_json:
        print_json({"appended": len(parsed), "appends": [to_jsonable(r) for r in results]})
    else:
        console.print(f"appended {len(parsed)} events in {len(results)} appends")


def _open_source(source: str) -> IO[str]:
    """Standard input, or the named file; a file that cannot be opened is one line, exit 2."""
    if source == "-":
        return sys.stdin
    try:
        return Path(source).open(encoding="utf-8")
    except FileNotFoundError:
        raise fail(f"{source}: no such file", EXIT_USAGE) from None
    except OSError as exc:
        raise fail(f"{source}: cannot read it ({exc.strerror or type(exc).__name__})", EXIT_USAGE) from None


def _lines(stream: IO[str], source: str) -> Iterator[tuple[int, str]]:
    """Numbered lines; text that is not UTF-8 (or a folder) stops with one line, exit 2."""
    where = "standard input" if source == "-" else source
    try:
        yield from enumerate(stream, start=1)
    except UnicodeDecodeError:
        raise fail(f"{where} is not UTF-8 text; nothing was appended", EXIT_USAGE) from None
    except OSError as exc:
        raise fail(f"{where}: cannot read it ({exc.strerror or type(exc).__name__})", EXIT_USAGE) from None


_EVENT_PREFIX = re.compile(r"^event #\d+: ")


def _line_problem(exc: EventValidationError, number: int) -> str:
    """The error of one event, named by its line (not its index in a batch)."""
    message = _EVENT_PREFIX.sub("", str(exc))
    return message if message.startswith("line ") else f"line {number}: {message}"


def _refuse(problems: list[str]) -> None:
    for problem in problems[:50]:
        err_console.print(problem, style="red", highlight=False, markup=False)
    raise fail(f"{len(problems)} malformed line(s); nothing was appended", EXIT_USAGE)


def read(
    stream_id: Annotated[str, typer.Argument(help="The stream to read.")],
    from_version: Annotated[int | None, typer.Option("--from", help="First version to read.")] = None,
    max_count: Annotated[int | None, typer.Option("--max", help="At most this many events.")] = None,
    backwards: Annotated[bool, typer.Option(help="Newest first.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Read one stream's events in stream order."""
    check_range("--from", from_version, minimum=0)
    check_range("--max", max_count, minimum=1)
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
    limit: Annotated[int, typer.Option(help=f"Page size (at most {MAX_PAGE:,}).")] = 100,
    event_type: TypeOpt = None,
    aggregate_type: AggOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read one page of the global order after a checkpoint; prints the next checkpoint."""
    check_range("--limit", limit, minimum=1, maximum=MAX_PAGE)
    with open_store() as store:
        page = store.read_all(_parse_position(after), limit, event_type, aggregate_type)
    if as_json:
        print_json({"events": page.events, "checkpoint": str(page.checkpoint), "at_end": page.at_end})
        return
    console.print(_events_table(page.events, f"{len(page.events)} events"))
    head = "  (at the head)" if page.at_end else ""
    console.print(f"next checkpoint: [bold]{escape(str(page.checkpoint))}[/]{head}")


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
    check_range("--interval", interval, above=0)
    check_range("--max-events", max_events, minimum=1)
    check_range("--idle-timeout", idle_timeout, minimum=0)
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
        table.add_row(plain(p.month), plain(p.name), f"{p.row_count:,}", human_bytes(p.total_bytes))
    console.print(table)


def partitions_ensure(
    months_ahead: Annotated[int, typer.Option(help="Months after the current one.")] = 3,
) -> None:
    """Create this month's partition and the next ones where missing."""
    check_range("--months-ahead", months_ahead, minimum=0, maximum=MAX_MONTHS_AHEAD)
    with open_store() as store:
        created = store.create_partitions_ahead(months_ahead)
    console.print(
        f"created {len(created)} partition(s)"
        + (": " + ", ".join(m.strftime("%Y-%m") for m in created) if created else "")
    )


def verify(
    from_position: Annotated[int | None, typer.Option("--from", help="First global position.")] = None,
    to_position: Annotated[int | None, typer.Option("--to", help="Last global position.")] = None,
    upgrade: Annotated[bool, typer.Option(
        "--upgrade", help="Re-sign events still under a version-1 (unkeyed) checksum with the "
        "keyed version 2, each once it checks out (after migrating to 0006).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check every event's keyed checksum in a range; exit 5 on any mismatch."""
    check_range("--from", from_position, minimum=0)
    check_range("--to", to_position, minimum=max(0, from_position or 0))
    with open_store() as store:
        total = (store.metrics().events or None) if not as_json else None  # an estimate
        with _progress(disable=as_json) as progress:
            task = progress.add_task("verifying", total=total)
            report = store.verify(from_position, to_position,
                                  progress=lambda n: progress.advance(task, n), upgrade=upgrade)
    if as_json:
        print_json({"checked": report.checked, "ok": report.ok, "mismatches": report.mismatches,
                    "legacy": report.legacy, "upgraded": report.upgraded})
    else:
        if report.upgraded:
            console.print(f"re-signed {report.upgraded:,} version-1 checksums as version 2")
        if report.ok:
            console.print(f"[green]ok[/]: {report.checked:,} events verified, no mismatch")
        else:
            table = Table(title=f"{len(report.mismatches)} checksum mismatches", title_justify="left")
            for col in ("global", "event id", "stream", "stored", "problem"):
                table.add_column(col)
            for m in report.mismatches[:100]:
                table.add_row(*(plain(v) for v in (m.global_position, m.event_id, m.stream_id,
                                                   m.stored[:20], m.computed.split(":")[0] + ">"
                                                   if m.computed.startswith("<an unkeyed")
                                                   else m.computed)))
            console.print(table)
            legacy = sum(1 for m in report.mismatches if m.computed.startswith("<an unkeyed"))
            if legacy:
                console.print(f"{legacy:,} events carry an unkeyed version-1 checksum (stored "
                              "before migration 0006): run 'evstore verify --upgrade' to check "
                              "and re-sign them")
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
            table.add_row(plain(c.name), "[green]ok[/]" if c.ok else "[red]FAIL[/]", plain(c.detail))
        console.print(table)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


def stats(
    exact: Annotated[bool, typer.Option(
        "--exact/--estimate", help="Count with full scans, or from the catalog's estimates (fast).")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Event counts, sizes and compression of the store."""
    from .archive import print_tiers, tier_rows

    with open_store() as store:
        m = store.metrics(exact=exact)
        months = tier_rows(store) if exact else []  # live vs archived per month (issue 13)
    if as_json:
        print_json({**to_jsonable(m), "compression_ratio": m.compression_ratio, "months": months})
        return
    table = Table(title="store", title_justify="left", show_header=False)
    table.add_column()
    table.add_column(justify="right")
    table.add_row("events", f"{m.events:,}")
    table.add_row("streams", f"{m.streams:,}")
    table.add_row("partitions", str(m.partitions))
    table.add_row("on disk", human_bytes(m.total_bytes))
    table.add_row("payloads (original)", _maybe(m.original_payload_bytes, human_bytes))
    table.add_row("payloads (stored)", _maybe(m.stored_payload_bytes, human_bytes))
    table.add_row("compressed events", _maybe(m.compressed_events, "{:,}".format))
    table.add_row("compression ratio", f"{m.compression_ratio:.2f}")
    console.print(table)
    types = Table(title="events by type", title_justify="left")
    types.add_column("type")
    types.add_column("events", justify="right")
    for name, count in m.events_by_type.items():
        types.add_row(plain(name), f"{count:,}")
    console.print(types)
    if months:
        print_tiers(months)


def _maybe(value: int | None, show: Any) -> str:
    """A figure only a full scan knows ('-' for an estimate)."""
    return "-" if value is None else str(show(value))


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
