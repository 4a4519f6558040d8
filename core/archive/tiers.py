"""Replays across tiers: archived and live events of a selection in one global order.

A replay with ``include_archived`` (``ReplayConfig(include_archived=True)``)
plans the streams of both tiers (:func:`archived_spans`, from the catalog)
and each batch reads its streams' archived events (segments fetched and
checked as in ``readthrough``, decoded by the store's ``decode_row``) merged
with the live ones by ``(transaction_id, global_position)``: the one global
order, each event once (a position held in both tiers, a kept partition or a
restored run, is delivered once, from PostgreSQL).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from psycopg.rows import dict_row

from ..errors import ArchivedHistoryError, ArchiveError, ConfigurationError
from ..store.persistence import START, EventRecord, EventStore, Position, ReadAllPage
from .readthrough import fetch_segment_lines, line_to_row

MAX_POSITION = 2**63 - 1


def _order(event: EventRecord) -> tuple[int, int]:
    return (int(event.transaction_id or 0), int(event.global_position or 0))


def selected(selection: Any, event: EventRecord) -> bool:
    """Whether an event is in a replay selection (core/jobs/replay.py's ReplaySelection)."""
    s = selection
    gp = event.global_position or 0
    return not (
        (s.from_position is not None and gp < s.from_position)
        or (s.to_position is not None and gp > s.to_position)
        or (s.from_time is not None and event.created_at < s.from_time)
        or (s.to_time is not None and event.created_at >= s.to_time)
        or (s.aggregate_ids is not None and event.aggregate_id not in s.aggregate_ids)
        or (s.aggregate_types is not None and event.aggregate_type not in s.aggregate_types)
        or (s.event_types is not None and event.event_type not in s.event_types)
    )


def archived_spans(store: EventStore, selection: Any) -> list[tuple[str, int, int, int]]:
    """(stream_id, events, first, last global position) of the streams with archived
    events in the selection's position range (counts before the other filters)."""
    lo = selection.from_position or 0
    hi = MAX_POSITION if selection.to_position is None else selection.to_position
    with store.db.connection() as conn:
        rows = conn.execute(store.db.sql("archive", "catalog_streams_range"),
                            {"lo": lo, "hi": hi}).fetchall()
    if rows and not store.settings.archive_read_through:
        raise ArchivedHistoryError(
            "*", f"{sum(int(r[1]) for r in rows)} events of {len(rows)} streams", [],
            "read-through is off (EVSTORE_ARCHIVE_READ_THROUGH=false)")
    return [(str(s), int(n), int(a), int(b)) for s, n, a, b in rows]


def merge_spans(live: Sequence[Any], archived: Iterable[tuple[str, int, int, int]],
                span_type: Any) -> list[Any]:
    """Live and archived spans of each stream as one span, in first-event order."""
    spans: dict[str, list[int]] = {s.stream_id: [s.events, s.first_position, s.last_position]
                                   for s in live}
    for stream_id, events, first, last in archived:
        if stream_id in spans:
            cur = spans[stream_id]
            spans[stream_id] = [cur[0] + events, min(cur[1], first), max(cur[2], last)]
        else:
            spans[stream_id] = [events, first, last]
    out = [span_type(sid, n, a, b) for sid, (n, a, b) in spans.items()]
    return sorted(out, key=lambda s: s.first_position)


def iter_archived_of(store: EventStore, selection: Any, streams: Sequence[str]) -> list[EventRecord]:
    """The archived events of these streams in the selection, in the global order."""
    wanted = set(streams)
    with store.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        segments = cur.execute(store.db.sql("archive", "catalog_for_streams"),
                               {"streams": list(streams)}).fetchall()
    if segments and not store.settings.archive_read_through:
        raise ArchivedHistoryError(streams[0] if len(streams) == 1 else f"{len(streams)} streams",
                                   "archived", sorted({s["run_id"] for s in segments}),
                                   "read-through is off (EVSTORE_ARCHIVE_READ_THROUGH=false)")
    found: dict[str, EventRecord] = {}
    for seg in segments:
        try:
            lines = fetch_segment_lines(store.settings, seg["target_url"], seg["data_path"],
                                        seg["sha256"], seg["raw_bytes"], seg["event_count"])
        except (ArchiveError, ConfigurationError, OSError) as exc:
            raise ArchivedHistoryError(
                f"{len(streams)} streams", "archived", [seg["run_id"]],
                f"segment {seg['segment_no']} cannot be read ({type(exc).__name__}: {exc})",
            ) from exc
        for line in lines:
            if line["stream_id"] in wanted and line["event_id"] not in found:
                event = store.decode_row(line_to_row(line))
                if selected(selection, event):
                    found[line["event_id"]] = event
    return sorted(found.values(), key=_order)


def merge_tiers(live: Iterable[EventRecord], archived: Iterable[EventRecord]) -> Iterator[EventRecord]:
    """Two iterators in the global order as one, each event once (live wins)."""
    last: tuple[int, int] | None = None
    # live first at equal keys: heapq.merge is stable across its arguments in order
    for event in heapq.merge(live, archived, key=_order):
        key = _order(event)
        if key == last:
            continue
        last = key
        yield event


def _key(text: str) -> tuple[int, int]:
    tx, _, pos = text.partition(":")
    return int(tx), int(pos)


def read_all_tiers(
    store: EventStore, after: Position | None = None, limit: int = 1000,
    event_types: Sequence[str] | None = None, aggregate_types: Sequence[str] | None = None,
    check_types: bool = True,
) -> ReadAllPage:
    """``store.read_all`` with the archived events of the same stretch of the global
    order merged in (``StreamConfig(include_archived=True)``: BATCH and REPLAY readers
    over archived months). The page holds every event, live or archived, after
    ``after`` up to its checkpoint, once each, in the global order."""
    page = store.read_all(after=after, limit=limit, event_types=event_types,
                          aggregate_types=aggregate_types, check_types=check_types)
    low = _order_of(after or START)
    high = _order_of(page.checkpoint)
    db = store.db
    with db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        segments = [s for s in cur.execute(db.sql("archive", "catalog_segment_ranges")).fetchall()
                    if s["first_position"] and _key(s["last_position"]) > low
                    and _key(s["first_position"]) <= high]
    if not segments:
        return page
    if not store.settings.archive_read_through:
        raise ArchivedHistoryError(
            "*", f"global order {low[0]}:{low[1]} - {high[0]}:{high[1]}",
            sorted({s["run_id"] for s in segments}),
            "read-through is off (EVSTORE_ARCHIVE_READ_THROUGH=false)")
    live = {_order(e) for e in page.events}
    types = set(event_types) if event_types is not None else None
    atypes = set(aggregate_types) if aggregate_types is not None else None
    extra: list[EventRecord] = []
    for seg in segments:
        try:
            lines = fetch_segment_lines(store.settings, seg["target_url"], seg["data_path"],
                                        seg["sha256"], seg["raw_bytes"], seg["event_count"])
        except (ArchiveError, ConfigurationError, OSError) as exc:
            raise ArchivedHistoryError(
                "*", f"segment {seg['segment_no']}", [seg["run_id"]],
                f"it cannot be read ({type(exc).__name__}: {exc})") from exc
        for line in lines:
            key = (int(line["transaction_id"]), int(line["global_position"]))
            if not low < key <= high or key in live:
                continue
            if types is not None and line["event_type"] not in types:
                continue
            if atypes is not None and line["aggregate_type"] not in atypes:
                continue
            extra.append(store.decode_row(line_to_row(line)))
            live.add(key)
    if not extra:
        return page
    merged = sorted([*page.events, *extra], key=_order)
    if len(merged) <= limit:
        return replace(page, events=merged)
    merged = merged[:limit]
    return replace(page, events=merged, checkpoint=merged[-1].position, at_end=False)


def _order_of(position: Position) -> tuple[int, int]:
    return int(position.transaction_id), int(position.global_position)
