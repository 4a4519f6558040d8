"""Snapshot load equals a full replay; schema versions; checksums; compression; races."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from evstore.core.errors import AggregateNotFoundError
from evstore.core.snapshots.stats import snapshot_stats
from evstore.core.snapshots.store import SnapshotStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .domain import EVENT_TYPES, Account, AccountV2, append, deposits

steps = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(EVENT_TYPES), st.integers(1, 1000)),
        st.just(("snapshot", 0)),
    ),
    min_size=1, max_size=40,
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=steps, chunk=st.integers(1, 7))
def test_snapshot_load_equals_full_replay(pstore: Any, script: list[tuple[str, int]],
                                          chunk: int) -> None:
    snaps = SnapshotStore(pstore)
    agg_id = uuid.uuid4().hex
    pending: list[tuple[str, int]] = [("Opened", 1)]
    for kind, n in script:
        if kind == "snapshot":
            append(pstore, agg_id, pending)
            pending = []
            snaps.create_snapshot(Account, agg_id)
            continue
        pending.append((kind, n))
        if len(pending) >= chunk:
            append(pstore, agg_id, pending)
            pending = []
    append(pstore, agg_id, pending)

    with_snapshot, version = snaps.load_aggregate_with_events(Account, agg_id)
    full, full_version = snaps.load_aggregate_with_events(Account, agg_id, use_snapshot=False)
    assert version == full_version == pstore.get_stream_version(f"Account-{agg_id}")
    assert with_snapshot.save() == full.save()
    assert with_snapshot.version == version


def test_snapshot_is_used_and_compressed_with_sizes(pstore: Any) -> None:
    snaps = SnapshotStore(pstore)
    append(pstore, "a1", [("Opened", 1)] + [("Tagged", 7)] * 200)
    snap = snaps.create_snapshot(Account, "a1")
    assert snap is not None and snap.aggregate_version == 201
    assert snap.compression == "zstd" and snap.stored_size < snap.original_size / 3
    assert snaps.create_snapshot(Account, "a1") is None  # nothing new since
    deposits(pstore, "a1", 3)
    # The load starts from the snapshot: only the 3 newer events are read.
    seen: list[int] = []

    class Spy(Account):
        def apply(self, event: Any) -> None:
            seen.append(event.stream_position)
            super().apply(event)

    agg, version = snaps.load_aggregate_with_events(Spy, "a1")
    assert version == 204 and seen == [202, 203, 204] and agg.balance == 6
    [stats] = snapshot_stats(pstore)
    assert (stats.aggregate_type, stats.snapshots, stats.codecs) == ("Account", 1, ["zstd"])
    assert stats.original_bytes == snap.original_size and stats.stored_bytes == snap.stored_size


def test_snapshot_of_an_older_state_schema_is_ignored(pstore: Any) -> None:
    snaps = SnapshotStore(pstore)
    deposits(pstore, "a2", 30)
    assert snaps.create_snapshot(Account, "a2") is not None  # schema 1
    agg, version = snaps.load_aggregate_with_events(AccountV2, "a2")  # would assert on v1 state
    assert (version, agg.balance) == (30, sum(range(1, 31)))
    v2 = snaps.create_snapshot(AccountV2, "a2")  # same version, newer schema: replaces v1
    assert v2 is not None and v2.state_schema == 2
    assert snaps.latest(Account, "a2") is None  # v1 code finds no snapshot it can use
    agg1, _ = snaps.load_aggregate_with_events(Account, "a2")
    assert agg1.balance == sum(range(1, 31))


def test_corrupt_snapshot_is_ignored(pstore: Any) -> None:
    snaps = SnapshotStore(pstore)
    deposits(pstore, "a3", 12)
    snaps.create_snapshot(Account, "a3")
    with pstore.connection() as conn:
        conn.execute(f"UPDATE {pstore.table('event_snapshots')} SET checksum = 'bad'")
    assert snaps.latest(Account, "a3") is None
    agg, version = snaps.load_aggregate_with_events(Account, "a3")
    assert (version, agg.balance) == (12, 78)


def test_unknown_aggregate(pstore: Any) -> None:
    with pytest.raises(AggregateNotFoundError, match="Account/nobody"):
        SnapshotStore(pstore).load_aggregate_with_events(Account, "nobody")


class Racing(Account):
    """Appends to its own stream the first time it applies an event during a build."""

    store: Any = None
    fired = False

    def apply(self, event: Any) -> None:
        if not Racing.fired:
            Racing.fired = True
            deposits(Racing.store, self.id, 5)  # commits at once, on another connection
        super().apply(event)


@pytest.mark.parametrize("in_callers_transaction", [False, True])
def test_racing_append_does_not_corrupt_a_snapshot(pstore: Any, in_callers_transaction: bool) -> None:
    deposits(pstore, "r1", 10)
    Racing.store, Racing.fired = pstore, False
    snaps = SnapshotStore(pstore)
    if in_callers_transaction:  # as a job batch does: READ COMMITTED, the caller's transaction
        with pstore.connection() as conn, conn.transaction():
            snap = snaps.create_snapshot(Racing, "r1", conn=conn)
    else:
        snap = snaps.create_snapshot(Racing, "r1")
    assert Racing.fired and pstore.get_stream_version("Account-r1") == 15
    # The snapshot covers exactly the events it applied: not the 5 that raced in.
    assert snap is not None and snap.aggregate_version == 10
    assert snap.state["balance"] == sum(range(1, 11))
    agg, version = snaps.load_aggregate_with_events(Account, "r1")
    full, _ = snaps.load_aggregate_with_events(Account, "r1", use_snapshot=False)
    assert version == 15 and agg.save() == full.save()
