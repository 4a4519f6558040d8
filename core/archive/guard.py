"""The snapshot guard: before a run's events leave PostgreSQL, every aggregate that
has events in the run and events after it, and whose type has a registered
snapshot class, gets a snapshot at or after its last archived event.

So the common load (latest snapshot plus the live events after it) never
touches the archive; only a load without snapshots, or a read of the old
events themselves, reads through. Classes come from
:func:`register_snapshot_class` (``workers.registry.register_aggregate_class``
and the classes of EVSTORE_AGGREGATE_CLASSES on the workers), or are passed
to ``run_policy(..., snapshot_classes=...)``. The snapshots are built inline,
in the finalizing process, while every event is still in PostgreSQL; a
failure stops the run before anything is deleted (run it again to resume).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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


def snapshot_guard(
    store: EventStore, run_id: str, classes: Iterable[type[Any]] | None = None
) -> GuardReport:
    """Snapshot every affected aggregate of the run (see the module's docstring)."""
    by_type = {type_of(c): c for c in (registered_classes() if classes is None else classes)}
    if not by_type:
        return GuardReport(0, 0, 0)
    with store.db.connection() as conn:
        rows = conn.execute(store.db.sql("archive", "guard_candidates"),
                            {"run_id": run_id, "types": sorted(by_type)}).fetchall()
    snapshots = SnapshotStore(store)
    built = already = 0
    for aggregate_id, aggregate_type, archived_to, _version in rows:
        cls = by_type[aggregate_type]
        latest = snapshots.latest(cls, aggregate_id, aggregate_type)
        if latest is not None and latest.aggregate_version >= archived_to:
            already += 1
            continue
        snapshots.create_snapshot(cls, aggregate_id, aggregate_type)
        built += 1
    return GuardReport(len(rows), built, already)
