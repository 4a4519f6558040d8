"""Read-through: reads that need archived events get them from the archive.

``read_stream`` (and so ``iter_stream``, ``get_events_for_aggregate``, the
snapshot loads and builds that fill a gap through it) calls :func:`complete_stream`
after reading PostgreSQL. When the catalog (``catalog``) names archived
positions in the range read that the live rows lack, their segments are
fetched through fsspec, checked (the SHA-256 PostgreSQL recorded when the
segment was verified, the size cap of its raw bytes, the event count), and
each archived line is turned back into a row and decoded by the store's own
``decode_row``: the same checksum check, the same decompression, and whatever
decoding hook the store has (decryption, forgotten subjects). Live rows win
over archived copies of the same position; the result is in stream order.

Never a partial history: with read-through off (``EVSTORE_ARCHIVE_READ_THROUGH
=false``), a target that cannot be reached, a segment that fails a check, or a
position the segments do not hold, the read raises ArchivedHistoryError naming
the stream, the missing positions and the runs.

Fetched segments are cached on disk (``archive_cache_dir``, at most
``archive_cache_bytes``, oldest evicted first; checked against their SHA-256
again on every use) and the parsed lines of the last few in memory. A
forget rewrites segments (core/privacy/archive_forget.py) and drops the
forgetting machine's copies; every other process drops its copies of files no
longer published (a digest no segment has now) when it next reads through,
at most every ``_PRUNE_EVERY`` seconds, on disk and in memory.
"""

from __future__ import annotations

import base64
import itertools
import os
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg.rows import dict_row

from ..errors import ArchivedHistoryError, ArchiveError, ConfigurationError
from ..store import reads as store_reads
from ..store.persistence import EventRecord, EventStore
from .rows import parse_segment
from .segments import FIELDS, decompress_capped, sha256
from .targets import ArchiveTarget

MAX_POSITION = 2**63 - 1
_MEMORY_SEGMENTS = 8
# How long "this store has no catalog rows" is believed before asking again
# (a gap in the live rows always asks at once).
_EMPTY_FOR = 2.0

# How often a reading process drops cached segments that are no longer published.
_PRUNE_EVERY = 60.0

_parsed: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
_pruned_at: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_empty_until: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_no_legacy_until: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_filled_until: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def forget_empty(reads: Any = None) -> None:
    """Ask the catalog again on the next read (a run just completed here)."""
    if reads is None:
        _empty_until.clear()
        _no_legacy_until.clear()
    else:
        _empty_until.pop(reads, None)
        _no_legacy_until.pop(reads, None)


def ranges(positions: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    out: list[tuple[int, int]] = []
    for p in sorted(positions):
        if out and out[-1][1] == p - 1:
            out[-1] = (out[-1][0], p)
        else:
            out.append((p, p))
    shown = [f"{a}-{b}" if a != b else f"{a}" for a, b in out]
    return ", ".join(shown[:20]) + (" …" if len(shown) > 20 else "")


# -- segments ------------------------------------------------------------------


def _cache_dir(settings: Any) -> Path:
    folder = settings.archive_cache_dir or (Path(settings.home) / "archive-cache")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def _cache_get(settings: Any, digest: str) -> bytes | None:
    if settings.archive_cache_bytes <= 0:
        return None
    path = _cache_dir(settings) / f"{digest}.zst"
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if sha256(data) != digest:  # changed on disk: fetch again
        path.unlink(missing_ok=True)
        return None
    os.utime(path)
    return data


def _cache_put(settings: Any, digest: str, data: bytes) -> None:
    limit = settings.archive_cache_bytes
    if limit <= 0 or len(data) > limit:
        return
    folder = _cache_dir(settings)
    tmp = folder / f".{digest}.{uuid.uuid4().hex}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, folder / f"{digest}.zst")
    files = sorted(folder.glob("*.zst"), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    for path in files:
        if total <= limit:
            break
        total -= path.stat().st_size
        path.unlink(missing_ok=True)


def prune_stale(db: Any, settings: Any, force: bool = False) -> int:
    """Drop this process's cached segments (on disk and parsed in memory) whose digest no
    published segment has any more, e.g. the pre-forget copy of a rewritten segment;
    at most every ``_PRUNE_EVERY`` seconds per database unless ``force``. The number
    dropped."""
    now = time.monotonic()
    if not force and _pruned_at.get(db, 0.0) > now:
        return 0
    _pruned_at[db] = now + _PRUNE_EVERY
    try:
        with db.connection() as conn:
            current = {d for (d,) in conn.execute(db.sql("archive", "segment_digests"))}
    except psycopg.errors.UndefinedTable:
        return 0
    dropped = 0
    with _lock:
        for digest in [d for d in _parsed if d not in current]:
            del _parsed[digest]
            dropped += 1
    for path in _cache_dir(settings).glob("*.zst"):
        if path.name[: -len(".zst")] not in current:
            path.unlink(missing_ok=True)
            dropped += 1
    return dropped


def fetch_segment_lines(
    settings: Any, target_url: str, data_path: str, digest: str, raw_bytes: int, count: int,
) -> list[dict[str, Any]]:
    """The lines of one archived segment, checked against what PostgreSQL recorded of it."""
    with _lock:
        if digest in _parsed:
            _parsed.move_to_end(digest)
            return _parsed[digest]
    where = f"{target_url.rstrip('/')}/{data_path}"
    data = _cache_get(settings, digest)
    if data is None:
        data = ArchiveTarget(target_url).read(data_path)
        if sha256(data) != digest:
            raise ArchiveError(f"{where}: its SHA-256 differs from the one recorded when it "
                               "was archived (changed on the target)")
        _cache_put(settings, digest, data)
    lines = parse_segment(decompress_capped(data, int(raw_bytes), where), FIELDS, where)
    if len(lines) != count:
        raise ArchiveError(f"{where}: holds {len(lines)} events, {count} were archived")
    with _lock:
        _parsed[digest] = lines
        while len(_parsed) > _MEMORY_SEGMENTS:
            _parsed.popitem(last=False)
    return lines


def line_to_row(line: dict[str, Any]) -> tuple[Any, ...]:
    """An archived line as the row ``decode_row`` takes (``COLUMNS`` order and types)."""
    values = dict(line)
    values["event_id"] = uuid.UUID(values["event_id"])
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    values["stored_at"] = datetime.fromisoformat(values["stored_at"])
    values["transaction_id"] = int(values["transaction_id"])
    if values["payload"] is not None:
        values["payload"] = base64.b64decode(values["payload"])
    return tuple(values[name] for name in FIELDS)


# -- one stream ------------------------------------------------------------------


def _catalog_rows(reads: Any, stream_id: str, lo: int, hi: int, gap: bool) -> list[dict[str, Any]]:
    """The catalog rows of the range: one indexed query while the catalog is known to
    have rows, none while it is known to be empty (unless the live rows show a gap)."""
    now = time.monotonic()
    if not gap and _empty_until.get(reads, 0.0) > now:
        return []
    db = reads.db
    try:
        with db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            if _filled_until.get(reads, 0.0) <= now:
                if not cur.execute(db.sql("archive", "catalog_any")).fetchone()["any"]:
                    _empty_until[reads] = now + _EMPTY_FOR
                    return []
                _filled_until[reads] = now + _EMPTY_FOR
            rows: list[dict[str, Any]] = cur.execute(
                db.sql("archive", "catalog_stream"), {"stream_id": stream_id, "lo": lo, "hi": hi}
            ).fetchall()
            return rows
    except psycopg.errors.UndefinedTable:  # a schema before migration 0009
        return []


def _check_uncataloged(reads: Any, stream_id: str, lo: int, hi: int,
                       events: list[EventRecord]) -> None:
    """ArchivedHistoryError when positions of the range are missing and completed runs
    made before the catalog existed (so not cataloged) may hold them."""
    now = time.monotonic()
    if _no_legacy_until.get(reads, 0.0) > now:
        return
    db = reads.db
    try:
        with db.connection() as conn:
            runs = [r for (r,) in conn.execute(db.sql("archive", "catalog_runs_missing"))]
    except psycopg.errors.UndefinedTable:
        return
    if not runs:
        _no_legacy_until[reads] = now + _EMPTY_FOR
        return
    head = reads.get_stream_version(stream_id)
    live = {e.stream_position for e in events}
    missing = [p for p in range(lo, min(hi, head) + 1) if p not in live]
    if missing:
        raise ArchivedHistoryError(
            stream_id, ranges(missing), runs,
            "are not in the archive catalog (runs made before it): run "
            "'evstore archive catalog --backfill'")


def _has_gap(events: list[EventRecord], start: int, backwards: bool,
             max_count: int | None) -> bool:
    """Whether the live rows visibly lack positions of the range read: none at all, a
    hole between them, a forward read not starting at ``start``, or a backwards read
    that stopped short of its count above position 1 (archived events lie below live
    ones, so their absence shows only there)."""
    if not events:
        return True
    positions = [int(e.stream_position or 0) for e in events]  # stored events have one
    step = -1 if backwards else 1
    if not backwards and positions[0] != max(start, 1):
        return True
    if backwards and positions[-1] > 1 and (max_count is None or len(events) < max_count):
        return True
    return any(b != a + step for a, b in itertools.pairwise(positions))


def complete_stream(
    reads: Any, stream_id: str, start: int, max_count: int | None, backwards: bool,
    events: list[EventRecord],
) -> list[EventRecord]:
    """``events`` (read from PostgreSQL) with the archived events of the range added."""
    if max_count == 0:
        return events
    if backwards:
        if start >= MAX_POSITION:  # from the end: the range is counted from the head
            start = (int(events[0].stream_position or 0) if events
                     else int(reads.get_stream_version(stream_id)))
        hi = start
        lo = 1 if max_count is None else max(1, start - max_count + 1)
    else:
        lo = max(start, 1)
        hi = MAX_POSITION if max_count is None else lo + max_count - 1
    gap = _has_gap(events, start, backwards, max_count)
    if not gap and max_count is not None and len(events) == max_count and (
            not backwards or start < MAX_POSITION):
        return events  # every position asked for is live
    entries = _catalog_rows(reads, stream_id, lo, hi, gap)
    if not entries:
        if gap:
            _check_uncataloged(reads, stream_id, lo, hi, events)
        return events
    live = {e.stream_position for e in events}
    wanted: set[int] = set()
    for entry in entries:
        first, last = max(entry["first_position"], lo), min(entry["last_position"], hi)
        wanted.update(p for p in range(first, last + 1) if p not in live)
    if not wanted:
        return events
    runs = sorted({e["run_id"] for e in entries})
    settings = reads.store.settings
    if not settings.archive_read_through:
        raise ArchivedHistoryError(stream_id, ranges(list(wanted)), runs,
                                   "read-through is off (EVSTORE_ARCHIVE_READ_THROUGH=false)")
    prune_stale(reads.db, settings)
    found: dict[int, EventRecord] = {}
    for entry in entries:
        try:
            lines = fetch_segment_lines(settings, entry["target_url"], entry["data_path"],
                                        entry["sha256"], entry["raw_bytes"],
                                        entry["segment_events"])
        except (ArchiveError, ConfigurationError, OSError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ArchivedHistoryError(
                stream_id, ranges(list(wanted - set(found))), runs,
                f"segment {entry['segment_no']} of run {entry['run_id']} cannot be read "
                f"({type(exc).__name__}: {detail})") from exc
        for line in lines:
            position = line["stream_position"]
            if line["stream_id"] == stream_id and position in wanted and position not in found:
                found[position] = reads.decode_row(line_to_row(line))
    lost = wanted - set(found)
    if lost:
        raise ArchivedHistoryError(stream_id, ranges(list(lost)), runs,
                                   "the archive's segments do not hold them")
    # Every event here was read from the store or the archive: its position is set.
    merged = sorted([*events, *found.values()], key=lambda e: cast(int, e.stream_position),
                    reverse=backwards)
    return merged if max_count is None else merged[:max_count]


def iter_archived(store: EventStore, lo: int = 0, hi: int = MAX_POSITION) -> Iterator[EventRecord]:
    """Every cataloged archived event with a global position in lo..hi, decoded, in the
    global order (segment by segment; each segment is in that order)."""
    db = store.db
    with db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        segments = cur.execute(db.sql("archive", "catalog_segments"), {"lo": lo, "hi": hi}).fetchall()
    settings = store.settings
    if segments and not settings.archive_read_through:
        raise ArchivedHistoryError("*", f"global {lo}-{hi}", sorted({s["run_id"] for s in segments}),
                                   "read-through is off (EVSTORE_ARCHIVE_READ_THROUGH=false)")
    if segments:
        prune_stale(db, settings)
    for seg in segments:
        try:
            lines = fetch_segment_lines(settings, seg["target_url"], seg["data_path"], seg["sha256"],
                                        seg["raw_bytes"], seg["event_count"])
        except (ArchiveError, ConfigurationError, OSError) as exc:
            raise ArchivedHistoryError(
                "*", f"global {seg['min_global']}-{seg['max_global']}", [seg["run_id"]],
                f"segment {seg['segment_no']} cannot be read ({type(exc).__name__}: {exc})",
            ) from exc
        for line in sorted(lines, key=lambda x: (int(x["transaction_id"]), x["global_position"])):
            if lo <= line["global_position"] <= hi:
                yield store.decode_row(line_to_row(line))


def install() -> None:
    if complete_stream not in store_reads.ARCHIVE_READ_HOOKS:
        store_reads.ARCHIVE_READ_HOOKS.append(complete_stream)
