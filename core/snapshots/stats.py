"""Snapshot statistics: load times measured per aggregate type, and what is stored.

:class:`LoadTimings` fits ``base_ms + ms_per_event * events`` to the loads of
each aggregate type (the ADAPTIVE strategy's input, flushed into
``snapshot_load_stats``); :func:`snapshot_stats` is what ``evstore snapshots
stats`` shows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import dict_row

from ..store.persistence import EventStore


@dataclass(frozen=True)
class SnapshotTypeStats:
    """What ``evstore snapshots stats`` shows for one aggregate type."""

    aggregate_type: str
    aggregates: int  # aggregates (streams) of the type
    events: int
    snapshots: int
    snapshotted_aggregates: int
    original_bytes: int
    stored_bytes: int
    latest: datetime | None
    codecs: list[str]
    state_schemas: list[int]
    loads_measured: int
    ms_per_event: float | None
    base_ms: float | None

    @property
    def compression_ratio(self) -> float:
        return self.original_bytes / self.stored_bytes if self.stored_bytes else 1.0


def snapshot_stats(store: EventStore) -> list[SnapshotTypeStats]:
    db = store.db
    with db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        snaps = {r["aggregate_type"]: r for r in cur.execute(db.sql("snapshots", "snapshot_stats"))}
        counts = {r["aggregate_type"]: r
                  for r in cur.execute(db.sql("snapshots", "aggregates_per_type"))}
        loads = {r["aggregate_type"]: r for r in cur.execute(
            db.sql("snapshots", "load_stats"), {"aggregate_type": None})}
    out = []
    for atype in sorted(set(snaps) | set(counts)):
        s, c, ld = snaps.get(atype), counts.get(atype), loads.get(atype)
        out.append(SnapshotTypeStats(
            aggregate_type=atype, aggregates=int(c["aggregates"]) if c else 0,
            events=int(c["events"]) if c else 0,
            snapshots=int(s["snapshots"]) if s else 0,
            snapshotted_aggregates=int(s["aggregates"]) if s else 0,
            original_bytes=int(s["original_bytes"]) if s else 0,
            stored_bytes=int(s["stored_bytes"]) if s else 0,
            latest=s["latest"] if s else None, codecs=sorted(s["codecs"]) if s else [],
            state_schemas=sorted(s["state_schemas"]) if s else [],
            loads_measured=int(ld["loads"]) if ld else 0,
            ms_per_event=float(ld["ms_per_event"]) if ld else None,
            base_ms=float(ld["base_ms"]) if ld else None,
        ))
    return out


@dataclass
class _Sums:
    """The running sums of a least-squares fit of ms against events."""

    loads: float = 0.0
    events: float = 0.0
    ms: float = 0.0
    events_sq: float = 0.0
    events_ms: float = 0.0


class LoadTimings:
    """Load times per aggregate type, fitted as ``base_ms + ms_per_event * events``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sums: dict[str, _Sums] = {}

    def add(self, aggregate_type: str, events: int, ms: float) -> None:
        with self._lock:
            s = self._sums.get(aggregate_type)
            if s is None:  # (not setdefault: that builds a _Sums on every load)
                s = self._sums[aggregate_type] = _Sums()
            s.loads += 1
            s.events += events
            s.ms += ms
            s.events_sq += events * events
            s.events_ms += events * ms

    def take(self) -> dict[str, tuple[int, int, float, float]]:
        """Per type: (loads, events, ms_per_event, base_ms); resets the sums."""
        with self._lock:
            sums, self._sums = self._sums, {}
        out = {}
        for atype, s in sums.items():
            n, sx, sy, sxx, sxy = s.loads, s.events, s.ms, s.events_sq, s.events_ms
            spread = n * sxx - sx * sx
            slope = (n * sxy - sx * sy) / spread if spread > 0 else (sy / sx if sx else 0.0)
            slope = max(slope, 1e-6)
            base = max((sy - slope * sx) / n, 0.0)
            out[atype] = (int(n), int(sx), slope, base)
        return out
