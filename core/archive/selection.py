"""What a policy selects, as SQL, and the dry run (preview) built on it.

Each strategy becomes a fixed predicate over ``events e`` (never user text)
plus parameters. The same selection drives the preview and the planning of a
run, so a preview shows exactly what a run at that moment would take.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

from ..store.partitions import month_of
from ..store.persistence import PartitionInfo
from .policies import ArchivalPolicy, ArchivalStrategy

if TYPE_CHECKING:
    from ..store.persistence import EventStore


@dataclass(frozen=True)
class Selection:
    predicate: str
    join: str
    params: dict[str, Any]
    cutoff: datetime | None
    partitions: list[PartitionInfo] = field(default_factory=list)


@dataclass(frozen=True)
class ArchivePreview:
    """What a policy would archive now; nothing was changed to find out."""

    policy: str
    strategy: str
    target_url: str
    events: int
    streams: int
    bytes: int  # the rows as PostgreSQL stores them
    payload_bytes: int  # the events' JSON bodies before compression
    partitions: list[str]
    partition_bytes: int
    first_created_at: datetime | None
    last_created_at: datetime | None
    cutoff: datetime | None
    segments: int
    delete_after_archive: bool
    drops_partitions: bool


def _closed_partitions(every: list[PartitionInfo], now: datetime) -> list[PartitionInfo]:
    """Partitions whose whole month is before the current one, oldest first."""
    current = month_of(now)
    start = datetime(current.year, current.month, 1, tzinfo=UTC)
    return [p for p in every if p.range_end <= start]


def select(policy: ArchivalPolicy, store: EventStore, now: datetime | None = None) -> Selection:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    params: dict[str, Any] = {}
    join = ""
    partitions: list[PartitionInfo] = []
    cutoff: datetime | None = None
    s = policy.strategy
    predicate = "before_cutoff"
    if s is ArchivalStrategy.TIME_BASED:
        assert policy.retention_days is not None
        limit = now - timedelta(days=policy.retention_days)
        partitions = [p for p in store.list_partitions() if p.range_end <= limit]
        month = month_of(limit)
        cutoff = datetime(month.year, month.month, 1, tzinfo=UTC)
    elif s is ArchivalStrategy.SIZE_BASED:
        assert policy.max_bytes is not None
        every = store.list_partitions()
        total = sum(p.total_bytes for p in every)
        for p in _closed_partitions(every, now):
            if total <= policy.max_bytes:
                break
            partitions.append(p)
            total -= p.total_bytes
        cutoff = partitions[-1].range_end if partitions else datetime(1970, 1, 1, tzinfo=UTC)
    elif s is ArchivalStrategy.GDPR_BASED:
        assert policy.retention_days is not None
        cutoff = now - timedelta(days=policy.retention_days)
    else:
        join = store.db.sql("archive", "join_streams")
        predicate = "older_than_kept"
        params["keep"] = policy.keep_events
    params["cutoff"] = cutoff
    names = [predicate]
    if policy.event_types:
        names.append("of_event_types")
        params["event_types"] = list(policy.event_types)
    if policy.aggregate_types:
        names.append("of_aggregate_types")
        params["aggregate_types"] = list(policy.aggregate_types)
    if not policy.drops_partitions:
        partitions = []
    where = " AND ".join(store.db.sql("archive", name) for name in names)
    return Selection(where, join, params, cutoff, partitions)


def preview(
    policy: ArchivalPolicy, store: EventStore, now: datetime | None = None
) -> ArchivePreview:
    """The dry run: counts what the policy selects, in a read-only transaction."""
    sel = select(policy, store, now)
    sql_text = store.db.sql("archive", "preview", predicate=sel.predicate, join=sel.join)
    # The preview counts in one snapshot and changes nothing.
    with store.db.connection() as conn, store.db.read_only_snapshot(conn):
        row = conn.cursor(row_factory=dict_row).execute(sql_text, sel.params).fetchone()
    assert row is not None
    events = int(row["events"])
    return ArchivePreview(
        policy=policy.name, strategy=policy.strategy.value, target_url=policy.target_url,
        events=events, streams=int(row["streams"]), bytes=int(row["bytes"]),
        payload_bytes=int(row["payload_bytes"]),
        partitions=[p.name for p in sel.partitions],
        partition_bytes=sum(p.total_bytes for p in sel.partitions),
        first_created_at=row["first_created_at"], last_created_at=row["last_created_at"],
        cutoff=sel.cutoff,
        segments=-(-events // policy.segment_size),
        delete_after_archive=policy.delete_after_archive,
        drops_partitions=policy.drops_partitions and policy.delete_after_archive,
    )
