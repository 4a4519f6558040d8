"""Stream readers and consumer groups: ``evstore consumers [list|show|reset|delete]``.

``evstore consumers`` alone lists every checkpoint (name and group) with its
position, its live members and its lag behind the head.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from evstore.core.store.persistence import START, Position

from .common import (
    add_group,
    console,
    escape,
    handle_errors,
    open_store,
    plain,
    print_json,
    to_jsonable,
)

Group = Annotated[str, typer.Option("--group", "-g", help="The consumer group ('' for none).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


def _ago(seconds: float) -> str:
    if seconds < 1:
        return "0 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _position(p: Position) -> str:
    if p == START:
        return "start"
    return f"{p.transaction_id}:head" if p.global_position == 2**63 - 1 else str(p)


def list_consumers(
    lag: Annotated[bool, typer.Option("--lag/--no-lag", help="Measure the lag (scans events).")] = True,
    as_json: Json = False,
) -> None:
    """Every consumer checkpoint with its members and lag behind the head."""
    from evstore.core.reader.checkpoints import CheckpointStore

    with open_store() as store:
        groups = CheckpointStore(store).groups(with_lag=lag)
    if as_json:
        print_json([{**to_jsonable(g), "checkpoint": str(g.checkpoint)} for g in groups])
        return
    if not groups:
        console.print("no consumers yet (a reader saves its checkpoint when it first runs)")
        return
    table = Table(title="consumers", title_justify="left")
    for col in ("name", "group", "partitions", "members", "checkpoint", "processed",
                "lag (events)", "lag (time)", "saved (UTC)", "filters"):
        table.add_column(col, overflow="fold")
    for g in groups:
        filters = ", ".join([*(g.event_types or []), *(g.aggregate_types or [])]) or "-"
        lag_events = (f"≥{g.lag_events:,}" if g.lag_capped else f"{g.lag_events:,}") if lag else "-"
        table.add_row(
            plain(g.checkpoint_name), plain(g.consumer_group or "-"), str(g.partitions),
            f"{g.members} ({g.owners} leasing)" if g.members else "[dim]none running[/]",
            _position(g.checkpoint), f"{g.events_processed:,}", lag_events,
            _ago(g.lag_seconds) if lag else "-", g.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
            plain(filters),
        )
    console.print(table)


def _existing_shards(cps: Any, name: str, group: str) -> list[Any]:
    """The checkpoint's shards; ConsumerNotFoundError when it has none."""
    from evstore.core.errors import ConsumerNotFoundError

    parts: list[Any] = cps.shards(name, group)
    if not parts:
        raise ConsumerNotFoundError(name, group)
    return parts


def show_consumer(
    name: Annotated[str, typer.Argument(help="The checkpoint name.")],
    group: Group = "",
    as_json: Json = False,
) -> None:
    """One consumer's partitions (checkpoint, owner, lease) and lag."""
    from evstore.core.reader.checkpoints import CheckpointStore

    with open_store() as store:
        cps = CheckpointStore(store)
        parts = _existing_shards(cps, name, group)
        lag_events, lag_seconds = cps.lag(name, group)
    if as_json:
        print_json({"name": name, "group": group, "lag_events": lag_events,
                    "lag_seconds": lag_seconds,
                    "partitions": [{**to_jsonable(p), "position": str(p.position)} for p in parts]})
        return
    console.print(f"[bold]{escape(name)}[/] group {escape(group or '-')}: lag {lag_events:,} events, "
                  f"{_ago(lag_seconds)}")
    table = Table()
    for col in ("partition", "checkpoint", "owner", "lease", "processed", "saved (UTC)"):
        table.add_column(col)
    for p in parts:
        table.add_row(str(p.partition), _position(p.position), plain(p.owner or "-"),
                      "live" if p.leased else "-", f"{p.events_processed:,}",
                      p.updated_at.strftime("%Y-%m-%d %H:%M:%S"))
    console.print(table)


def _parse_position(text: str) -> Position | None:
    low = text.strip().lower()
    if low in ("start", "beginning", "0"):
        return START
    if low in ("head", "end", "now"):
        return None
    return Position.parse(text)


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--to-time: {text!r} is not an ISO 8601 time such as "
                         "2024-05-01T12:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def reset_consumer(
    name: Annotated[str, typer.Argument(help="The checkpoint name.")],
    group: Group = "",
    to: Annotated[str | None, typer.Option(
        "--to", help="A position: 'start', 'head', or '<transaction>:<position>'.")] = None,
    to_time: Annotated[str | None, typer.Option(
        "--to-time", help="Just before the first event stored at or after this ISO time.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Even while members run (they may save over it).")] = False,
) -> None:
    """Move a consumer's checkpoint (every partition) back or forward."""
    from evstore.core.reader.checkpoints import CheckpointStore

    if (to is None) == (to_time is None):
        raise ValueError("give exactly one of --to POSITION or --to-time TIME")
    with open_store() as store:
        cps = CheckpointStore(store)
        if to_time is not None:
            position = cps.position_at(_parse_time(to_time))
        else:
            parsed = _parse_position(to or "")
            position = parsed if parsed is not None else cps.head()
        count = cps.reset(name, group, position, force=force)
        lag_events, _ = cps.lag(name, group)
    console.print(f"{name} (group {group or '-'}): {count} partition(s) set to "
                  f"{_position(position)}; {lag_events:,} events to read", markup=False)


def delete_consumer(
    name: Annotated[str, typer.Argument(help="The checkpoint name.")],
    group: Group = "",
    force: Annotated[bool, typer.Option("--force", help="Even while members run.")] = False,
) -> None:
    """Forget a consumer's checkpoint (its next run starts over)."""
    from evstore.core.errors import ConsumerBusyError
    from evstore.core.reader.checkpoints import CheckpointStore

    with open_store() as store:
        cps = CheckpointStore(store)
        parts = _existing_shards(cps, name, group)
        busy = sorted({p.owner for p in parts if p.leased and p.owner})
        if busy and not force:
            raise ConsumerBusyError(name, group, busy)
        cps.delete(name, group)
    console.print(f"deleted consumer {name} (group {group or '-'}, {len(parts)} partition(s))",
                  markup=False)


def register(app: typer.Typer) -> None:
    consumers = add_group(
        app, "consumers",
        "Stream readers and consumer groups: checkpoints, members, lag; reset a checkpoint.",
        {"list": list_consumers, "show": show_consumer, "reset": reset_consumer,
         "delete": delete_consumer},
        no_args_is_help=False, invoke_without_command=True)

    @consumers.callback()
    def _default(
        ctx: typer.Context,
        lag: Annotated[bool, typer.Option("--lag/--no-lag", help="Measure the lag.")] = True,
        as_json: Json = False,
    ) -> Any:
        if ctx.invoked_subcommand is None:
            handle_errors(list_consumers)(lag=lag, as_json=as_json)
