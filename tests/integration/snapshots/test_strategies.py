"""Each snapshot strategy triggers when it should, in the sweep and in is_due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from evstore.core.snapshots.policy import (
    LoadCost,
    SnapshotConfig,
    SnapshotStrategy,
    due_aggregates,
    is_due,
    load_cost,
    plan_batches,
    run_sweep,
)
from evstore.core.snapshots.store import SnapshotStore

from .domain import Account, deposits


def due(store: Any, config: SnapshotConfig, now: datetime | None = None) -> set[str]:
    return {d.aggregate_id for d in due_aggregates(store, Account, config, now=now)}


def test_event_count_every_n_events(pstore: Any) -> None:
    cfg = SnapshotConfig(SnapshotStrategy.EVENT_COUNT, every_n_events=5, min_events=1)
    for agg, n in (("a4", 4), ("a5", 5), ("a12", 12)):
        deposits(pstore, agg, n)
    assert due(pstore, cfg) == {"a5", "a12"}
    report = run_sweep(pstore, Account, cfg, batch_size=1)
    assert (report.built, sorted(report.aggregates)) == (2, ["a12", "a5"])
    assert due(pstore, cfg) == set()
    deposits(pstore, "a12", 4)  # 4 since the snapshot at 12
    assert due(pstore, cfg) == set()
    deposits(pstore, "a12", 1)  # 5 since
    assert due(pstore, cfg) == {"a12"}
    assert SnapshotStore(pstore).latest(Account, "a12").aggregate_version == 12  # type: ignore[union-attr]


def test_time_based_when_the_last_snapshot_is_older_than_max_age(pstore: Any) -> None:
    cfg = SnapshotConfig(SnapshotStrategy.TIME_BASED, max_age_seconds=3600, min_events=3)
    deposits(pstore, "old", 5)
    deposits(pstore, "tiny", 2)  # below min_events: never
    assert due(pstore, cfg) == {"old"}  # no snapshot yet
    run_sweep(pstore, Account, cfg)
    deposits(pstore, "old", 1)
    later = datetime.now(UTC) + timedelta(hours=2)
    assert due(pstore, cfg) == set()  # the snapshot is young
    assert due(pstore, cfg, now=later) == {"old"}  # two hours on, and an event since
    run_sweep(pstore, Account, cfg)  # now() is real again: nothing due
    snaps = SnapshotStore(pstore)
    assert snaps.latest(Account, "old").aggregate_version == 5  # type: ignore[union-attr]


def test_time_based_skips_aggregates_with_nothing_new(pstore: Any) -> None:
    cfg = SnapshotConfig(SnapshotStrategy.TIME_BASED, max_age_seconds=60, min_events=1)
    deposits(pstore, "quiet", 3)
    run_sweep(pstore, Account, cfg)
    assert due(pstore, cfg, now=datetime.now(UTC) + timedelta(days=1)) == set()


def test_adaptive_follows_measured_load_times(pstore: Any) -> None:
    cfg = SnapshotConfig(SnapshotStrategy.ADAPTIVE, load_budget_ms=10, min_events=1,
                         default_ms_per_event=1.0)
    for agg, n in (("s9", 9), ("s10", 10), ("s18", 18), ("s19", 19)):
        deposits(pstore, agg, n)
    # Not measured yet: 1 ms an event by default, so more than 10 events is too slow.
    assert due(pstore, cfg) == {"s18", "s19"}

    # Measured: 1 ms + 0.5 ms an event, so loads of 19+ events exceed 10 ms.
    snaps = SnapshotStore(pstore)
    for n in (10, 20, 40, 80):
        snaps.timings.add("Account", n, 1.0 + 0.5 * n)
    assert snaps.flush_load_stats() == 1
    cost = load_cost(pstore, "Account", cfg)
    assert cost.measured and abs(cost.ms_per_event - 0.5) < 1e-6 and abs(cost.base_ms - 1) < 1e-6
    assert due(pstore, cfg) == {"s19"}
    assert not is_due(cfg, 18, 0, None, cost) and is_due(cfg, 19, 0, None, cost)
    # After a snapshot only the events since count.
    run_sweep(pstore, Account, cfg)
    deposits(pstore, "s19", 18)
    assert due(pstore, cfg) == set()


def test_real_loads_are_measured(pstore: Any) -> None:
    deposits(pstore, "m1", 50)
    snaps = SnapshotStore(pstore)
    for _ in range(3):
        snaps.load_aggregate_with_events(Account, "m1")
    snaps.flush_load_stats()
    cost = load_cost(pstore, "Account", SnapshotConfig())
    assert cost.measured and cost.ms_per_event > 0


def test_is_due_rules() -> None:
    now = datetime.now(UTC)
    every5 = SnapshotConfig(every_n_events=5, min_events=1)
    assert is_due(every5, 5, 0, None) and not is_due(every5, 9, 5, now)
    hourly = SnapshotConfig(SnapshotStrategy.TIME_BASED, max_age_seconds=3600, min_events=1)
    assert is_due(hourly, 3, 2, now - timedelta(hours=2), now=now)
    assert not is_due(hourly, 3, 3, now - timedelta(hours=2), now=now)
    assert not is_due(hourly, 3, 2, now - timedelta(minutes=5), now=now)
    budget = SnapshotConfig(SnapshotStrategy.ADAPTIVE, load_budget_ms=5, min_events=1)
    slow = LoadCost(ms_per_event=1.0, base_ms=6.0, measured=True)  # over budget already
    assert is_due(budget, 2, 1, None, slow)


def test_batches_cover_the_due_aggregates(pstore: Any) -> None:
    cfg = SnapshotConfig(every_n_events=2, min_events=1)
    for i in range(7):
        deposits(pstore, f"b{i}", 2)
    batches = plan_batches(pstore, Account, cfg, batch_size=3)
    assert [(b.first, b.last, b.count) for b in batches] == [
        ("b0", "b2", 3), ("b3", "b5", 3), ("b6", "b6", 1)]
