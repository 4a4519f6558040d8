"""When to snapshot (SnapshotStrategy, SnapshotConfig), and the sweep that does it.

The sweep finds the aggregates of one type past their strategy's threshold,
in aggregate-id order, and cuts them into batches of id ranges; building a
batch re-checks each aggregate of its range and snapshots those still due.
Building twice is harmless (an aggregate snapshotted already is no longer
due, and one snapshot per version is kept), which is what the job engine's
at-least-once delivery needs. ``workers/snapshot_jobs.py`` runs the batches
as jobs; :func:`run_sweep` runs them in this process.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from dataclasses import InitVar, asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row

from ..errors import ConfigurationError, SnapshotBuildError
from ..store.persistence import EventStore
from .aggregate import state_schema_of, type_of
from .store import SnapshotStore, using


class SnapshotStrategy(enum.Enum):
    # Every N events: due when N events were appended since the last snapshot.
    EVENT_COUNT = "event_count"
    # Due when the last snapshot is older than max_age and events came since.
    TIME_BASED = "time_based"
    # Due when loading would cost more than load_budget_ms, judged from the
    # events since the snapshot and the load times measured for the type.
    ADAPTIVE = "adaptive"


@dataclass(frozen=True)
class SnapshotConfig:
    strategy: SnapshotStrategy = SnapshotStrategy.EVENT_COUNT
    every_n_events: int = 100
    max_age_seconds: float = 3600.0
    load_budget_ms: float = 20.0
    # Used by ADAPTIVE until loads of the type were measured.
    default_ms_per_event: float = 0.05
    # Aggregates with fewer events are never worth a snapshot.
    min_events: int = 10
    compression: str = "zstd"
    # Snapshots kept per aggregate (the newest ones).
    keep: int = 2
    # The spec's spelling of every_n_events (init only).
    event_threshold: InitVar[int | None] = None

    def __post_init__(self, event_threshold: int | None) -> None:
        if event_threshold is not None:
            if self.every_n_events not in (100, event_threshold):
                raise ConfigurationError(
                    f"give every_n_events ({self.every_n_events}) or its spec name "
                    f"event_threshold ({event_threshold}), not both")
            object.__setattr__(self, "every_n_events", event_threshold)
        if not isinstance(self.strategy, SnapshotStrategy):
            object.__setattr__(self, "strategy", SnapshotStrategy(self.strategy))
        if self.every_n_events < 1:
            raise ConfigurationError(f"every_n_events must be >= 1 (got {self.every_n_events})")
        if self.max_age_seconds <= 0:
            raise ConfigurationError(f"max_age_seconds must be > 0 (got {self.max_age_seconds})")
        if self.load_budget_ms <= 0 or self.default_ms_per_event <= 0:
            raise ConfigurationError("load_budget_ms and default_ms_per_event must be > 0")
        if self.min_events < 1 or self.keep < 0:
            raise ConfigurationError("min_events must be >= 1 and keep >= 0")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "strategy": self.strategy.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SnapshotConfig:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigurationError(
                f"unknown snapshot setting(s) {', '.join(unknown)} "
                f"(known: {', '.join(cls.__dataclass_fields__)})"
            )
        try:
            return cls(**data)
        except ValueError as exc:  # e.g. a strategy name that does not exist
            raise ConfigurationError(f"invalid snapshot configuration: {exc}") from None


@dataclass(frozen=True)
class LoadCost:
    """Measured (or assumed) cost of loading one aggregate of a type."""

    ms_per_event: float
    base_ms: float
    measured: bool


@dataclass(frozen=True)
class Threshold:
    """What makes an aggregate due, in the terms the sweep's query understands."""

    min_new: int  # events since the last usable snapshot
    min_events: int
    older_than: datetime | None  # latest snapshot created before this (or none)


def load_cost(store: EventStore, aggregate_type: str, config: SnapshotConfig) -> LoadCost:
    with store.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(store.db.sql("snapshots", "load_stats"),
                          {"aggregate_type": aggregate_type}).fetchone()
    if row is None:
        return LoadCost(config.default_ms_per_event, 0.0, False)
    return LoadCost(float(row["ms_per_event"]), float(row["base_ms"]), True)


def threshold(config: SnapshotConfig, cost: LoadCost | None = None,
              now: datetime | None = None) -> Threshold:
    s = config.strategy
    if s is SnapshotStrategy.EVENT_COUNT:
        return Threshold(config.every_n_events, config.min_events, None)
    if s is SnapshotStrategy.TIME_BASED:
        now = now or datetime.now(UTC)
        return Threshold(1, config.min_events, now - timedelta(seconds=config.max_age_seconds))
    cost = cost or LoadCost(config.default_ms_per_event, 0.0, False)
    spare = config.load_budget_ms - cost.base_ms
    # due when base + per_event * n > budget, i.e. n > spare / per_event
    n = math.floor(spare / cost.ms_per_event) + 1 if spare > 0 else 1
    return Threshold(max(n, 1), config.min_events, None)


def is_due(config: SnapshotConfig, version: int, snapshot_version: int,
           snapshot_at: datetime | None, cost: LoadCost | None = None,
           now: datetime | None = None) -> bool:
    """The rule the sweep applies, for one aggregate (the query is its twin)."""
    t = threshold(config, cost, now)
    return (version >= t.min_events and version - snapshot_version >= t.min_new
            and (t.older_than is None or snapshot_at is None or snapshot_at < t.older_than))


@dataclass(frozen=True)
class DueAggregate:
    aggregate_id: str
    version: int
    snapshot_version: int
    snapshot_at: datetime | None


def due_aggregates(
    store: EventStore, cls: type[Any], config: SnapshotConfig,
    aggregate_type: str | None = None, first: str | None = None, last: str | None = None,
    page: int = 1000, conn: psycopg.Connection[Any] | None = None,
    now: datetime | None = None,
) -> Iterator[DueAggregate]:
    """The aggregates past the threshold, in id order, within [first, last] if given."""
    atype = type_of(cls, aggregate_type)
    t = threshold(config, load_cost(store, atype, config), now)
    query = store.db.sql("snapshots", "due_aggregates")
    args: dict[str, Any] = {
        "aggregate_type": atype, "state_schema": state_schema_of(cls),
        "first": first or "", "after": None, "upto": last, "min_events": t.min_events,
        "min_new": t.min_new, "older_than": t.older_than, "limit": page,
    }
    while True:
        with using(store.db, conn) as c, c.cursor(row_factory=class_row(DueAggregate)) as cur:
            rows = cur.execute(query, args).fetchall()
        yield from rows
        if len(rows) < page:
            return
        args["after"] = rows[-1].aggregate_id


@dataclass(frozen=True)
class SnapshotBatch:
    """An inclusive range of aggregate ids, and how many were due in it when planned."""

    first: str
    last: str
    count: int


def plan_batches(store: EventStore, cls: type[Any], config: SnapshotConfig,
                 batch_size: int = 100, aggregate_type: str | None = None) -> list[SnapshotBatch]:
    if batch_size < 1:
        raise ConfigurationError(f"batch_size must be >= 1 (got {batch_size})")
    batches: list[SnapshotBatch] = []
    ids: list[str] = []
    for due in due_aggregates(store, cls, config, aggregate_type):
        ids.append(due.aggregate_id)
        if len(ids) == batch_size:
            batches.append(SnapshotBatch(ids[0], ids[-1], len(ids)))
            ids = []
    if ids:
        batches.append(SnapshotBatch(ids[0], ids[-1], len(ids)))
    return batches


@dataclass
class BuildReport:
    built: int = 0
    skipped: int = 0  # no longer due, or built meanwhile by someone else
    original_bytes: int = 0
    stored_bytes: int = 0
    aggregates: list[str] = field(default_factory=list)

    def add(self, other: BuildReport) -> None:
        self.built += other.built
        self.skipped += other.skipped
        self.original_bytes += other.original_bytes
        self.stored_bytes += other.stored_bytes
        self.aggregates.extend(other.aggregates)


def build_batch(
    store: EventStore, cls: type[Any], config: SnapshotConfig, batch: SnapshotBatch,
    aggregate_type: str | None = None, conn: psycopg.Connection[Any] | None = None,
) -> BuildReport:
    """Snapshot every aggregate of the range that is still due."""
    snapshots = SnapshotStore(store, config.compression)
    report = BuildReport()
    for due in list(due_aggregates(store, cls, config, aggregate_type, batch.first, batch.last,
                                   conn=conn)):
        try:
            snap = snapshots.create_snapshot(cls, due.aggregate_id, aggregate_type,
                                             keep=config.keep, conn=conn)
        except Exception as exc:
            raise SnapshotBuildError(due.aggregate_id, exc) from exc
        if snap is None:
            report.skipped += 1
            continue
        report.built += 1
        report.original_bytes += snap.original_size
        report.stored_bytes += snap.stored_size
        report.aggregates.append(due.aggregate_id)
    report.skipped += max(batch.count - report.built - report.skipped, 0)
    snapshots.flush_load_stats()  # the builds' load times feed the ADAPTIVE strategy
    return report


def run_sweep(store: EventStore, cls: type[Any], config: SnapshotConfig,
              batch_size: int = 100, aggregate_type: str | None = None) -> BuildReport:
    """Plan and build every batch in this process (no job engine needed)."""
    report = BuildReport()
    for batch in plan_batches(store, cls, config, batch_size, aggregate_type):
        report.add(build_batch(store, cls, config, batch, aggregate_type))
    return report
