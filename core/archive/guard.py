"""The snapshot guard: before a run's events leave PostgreSQL, every aggregate that
has events in the run and events after it, and whose type has a registered
snapshot class, gets a snapshot at or after its last archived event.

So the common load (latest snapshot plus the live events after it) never
touches the archive; only a load without snapshots, or a read of the old
events themselves, reads through. Classes come from
:func:`register_snapshot_class` (``workers.registry.register_aggregate_class``
and the classes of EVSTORE_AGGREGATE_CLASSES on the workers), or are passed
to ``run_policy(..., snapshot_classes=...)``.

An archive job (``workers/archive_jobs.py``) plans the guard with the run
(:func:`plan_guard`: the affected aggregates, each with its last archived
position, cut into chunks) and builds it in guard batches on the workers
(:func:`guard_aggregates`); :func:`snapshot_guard` then runs inline in
``finalize_run`` as the final check, building only what is still missing
(everything, for a run finalized in-process). A failure stops the run before
anything is deleted (run it again to resume: what was built stays built).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SnapshotBuildError
from ..snapshots.aggregate import type_of
from ..snapshots.store import SnapshotStore

if TYPE_CHECKING:
    from ..store.persistence import EventStore

_CLASSES: dict[str, type[Any]] = {}
_LOCK = threading.Lock()


def register_snapshot_class(cls: type[Any]) -> type[Any]:
    """Guard the aggregates of ``cls``'s type before archived events are deleted."""
    with _LOCK:
        _CLASSES[type_of(cls)] = cls
    return cls


def registered_classes() -> list[type[Any]]:
    with _LOCK:
        return list(_CLASSES.values())


@dataclass(frozen=True)
class GuardReport:
    affected: int  # aggregates with archived and live events, of a guarded type
    built: int  # snapshots written now
    already: int  # had one at or after their last archived event

    def __add__(self, other: GuardReport) -> GuardReport:
        return GuardReport(self.affected + other.affected, self.built + other.built,
                           self.already + other.already)

    def as_dict(self) -> dict[str, int]:
        return {"affected": self.affected, "built": self.built, "already": self.already}


@dataclass(frozen=True)
class GuardChunk:
    """Affected aggregates of one type, each with its last archived position (id order)."""

    aggregate_type: str
    aggregates: list[tuple[str, int]]

    @property
    def label(self) -> str:
        first, last = self.aggregates[0][0], self.aggregates[-1][0]
        return (f"snapshot guard: {len(self.aggregates)} {self.aggregate_type} "
                f"aggregate(s) {first}..{last}")


def guard_aggregates(
    store: EventStore, cls: type[Any], aggregate_type: str,
    aggregates: Iterable[tuple[str, int]],
) -> GuardReport:
    """Snapshot each ``(aggregate_id, archived_to)`` with no snapshot at or after ``archived_to``.

    Idempotent: an aggregate snapshotted already (by an earlier attempt, another
    worker, the snapshot sweep) is counted in ``already``. Each snapshot commits
    in its own transaction (SnapshotStore.create_snapshot), so it is visible to
    the finalize step however the caller's transaction ends. A failure raises
    SnapshotBuildError naming the aggregate.
    """
    snapshots = SnapshotStore(store)
    affected = built = 0
    for aggregate_id, archived_to in aggregates:
        affected += 1
        latest = snapshots.latest(cls, aggregate_id, aggregate_type)
        if latest is not None and latest.aggregate_version >= archived_to:
            continue
        try:
            snap = snapshots.create_snapshot(cls, aggregate_id, aggregate_type)
        except Exception as exc:
            raise SnapshotBuildError(aggregate_id, exc) from exc
        built += snap is not None  # None: written meanwhile by a concurrent build
    return GuardReport(affected, built, affected - built)


def _by_type(classes: Iterable[type[Any]] | None) -> dict[str, type[Any]]:
    return {type_of(c): c for c in (registered_classes() if classes is None else classes)}


def _chunks(rows: Sequence[Sequence[Any]], batch_size: int) -> list[GuardChunk]:
    """Rows ``(aggregate_id, aggregate_type, archived_to, ...)`` in (type, id) order, cut
    into chunks of at most ``batch_size`` aggregates of one type."""
    chunks: list[GuardChunk] = []
    for aggregate_id, aggregate_type, archived_to, *_ in rows:
        last = chunks[-1] if chunks else None
        if last is None or last.aggregate_type != aggregate_type or \
                len(last.aggregates) >= batch_size:
            last = GuardChunk(str(aggregate_type), [])
            chunks.append(last)
        last.aggregates.append((str(aggregate_id), int(archived_to)))
    return chunks


def plan_guard(store: EventStore, run_id: str, types: Iterable[str],
               batch_size: int) -> list[GuardChunk]:
    """The run's affected aggregates of ``types``, in (type, id) order, cut into chunks.

    Unlike ``guard_candidates`` (which reads the archive catalog, complete only
    once every segment is exported), this reads the run's items for the
    segments not cataloged yet, so it works right after planning.
    """
    if batch_size < 1:
        raise ValueError(f"the guard's batch size must be >= 1 (got {batch_size})")
    wanted = sorted(set(types))
    if not wanted:
        return []
    with store.db.connection() as conn:
        rows = conn.execute(store.db.sql("archive", "guard_plan"),
                            {"run_id": run_id, "types": wanted}).fetchall()
    return _chunks(rows, batch_size)


def snapshot_guard(
    store: EventStore, run_id: str, classes: Iterable[type[Any]] | None = None
) -> GuardReport:
    """Snapshot every affected aggregate of the run still without one (see the module's
    docstring); the catalog must name every archived position (finalize writes it)."""
    by_type = _by_type(classes)
    if not by_type:
        return GuardReport(0, 0, 0)
    with store.db.connection() as conn:
        rows = conn.execute(store.db.sql("archive", "guard_candidates"),
                            {"run_id": run_id, "types": sorted(by_type)}).fetchall()
    report = GuardReport(0, 0, 0)
    for chunk in _chunks(rows, max(len(rows), 1)):
        report += guard_aggregates(store, by_type[chunk.aggregate_type], chunk.aggregate_type,
                                   chunk.aggregates)
    return report
