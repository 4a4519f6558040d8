"""Consumer-group hand-over inside one process: a member leaving, a remote member dying."""

from __future__ import annotations

from typing import Any

import psycopg
from evstore.core.reader.checkpoints import CheckpointStore
from evstore.core.reader.reader import EventStreamReader
from evstore.core.reader.streams import StreamConfig, StreamReadMode

from .helpers import Collector, append_many, wait_for

LIVE = StreamReadMode.CATCH_UP


def cfg(member: str, shards: int = 4) -> StreamConfig:
    return StreamConfig("rm", consumer_group="g", mode=LIVE, shards=shards,
                        lease_ttl=1.5, poll_interval=0.2, member_id=member)


def test_a_member_that_leaves_hands_its_shards_over(pstore: Any) -> None:
    cps = CheckpointStore(pstore)
    a_got, b_got = Collector(), Collector()
    a = EventStreamReader(pstore, cfg("a"))
    b = EventStreamReader(pstore, cfg("b"))
    a.start(a_got)
    b.start(b_got)
    try:
        wait_for(lambda: len(a.owned_shards) == 2 and len(b.owned_shards) == 2,
                 "an even split")
        streams = [f"User-{i}" for i in range(12)]
        append_many(pstore, streams, 3)
        wait_for(lambda: len(a_got) + len(b_got) == 36, "36 events")
        assert len(a_got) and len(b_got)

        a.stop()
        a.join(timeout=30)
        # a released its shards on the way out: b owns all four at once
        wait_for(lambda: len(b.owned_shards) == 4, "b to own every shard")
        append_many(pstore, streams, 2)
        wait_for(lambda: len(b_got) == 36 - len(a_got) + 24, "b to handle the new events")
        assert {p.owner for p in cps.shards("rm", "g")} == {"b"}
        for positions in b_got.by_stream().values():
            assert positions == sorted(positions) and len(set(positions)) == len(positions)
    finally:
        a.stop()
        b.stop()
        b.join(timeout=30)


def test_shards_of_a_remote_member_that_died_are_taken_after_its_lease(pstore: Any) -> None:
    # Given a member on another machine that held every shard, then went silent
    cps = CheckpointStore(pstore)
    cps.ensure("rm", "g", 4)
    with psycopg.connect(pstore.url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO events.consumer_members (checkpoint_name, consumer_group, member_id, "
            "host, identity, pid, expires_at) "
            "VALUES ('rm', 'g', 'ghost', 'elsewhere', 'elsewhere', 1, now() + interval '1 s')")
        conn.execute("UPDATE events.stream_checkpoints SET owner = 'ghost', "
                     "lease_expires_at = now() + interval '1 s'")
    append_many(pstore, [f"User-{i}" for i in range(8)], 2)

    # When a live member joins, it gets the shards once the ghost's lease lapses
    got = Collector()
    with EventStreamReader(pstore, cfg("live")) as reader:
        reader.start(got)
        wait_for(lambda: len(got) == 16, "every event, after the lease lapsed")
        assert reader.owned_shards == (0, 1, 2, 3)
    assert [p.owner for p in cps.shards("rm", "g")] == [None] * 4  # released on stop


def test_group_lag_counts_each_shard_from_its_own_checkpoint(pstore: Any) -> None:
    from evstore.core.reader.streams import shard_of

    from .helpers import all_events, append

    streams = [f"User-{i}" for i in range(12)]
    for s in streams:
        append(pstore, s, 2)
    events = all_events(pstore, 24)
    cps = CheckpointStore(pstore)
    cps.ensure("lagged", "g", 4)
    # Partition 0 is done; the others have read nothing.
    with pstore.connection() as conn:
        head = events[-1].position
        conn.execute("UPDATE events.stream_checkpoints SET transaction_id = %s, "
                     "global_position = %s WHERE shard = 0",
                     [head.transaction_id, head.global_position])
    behind = sum(2 for s in streams if shard_of(s, 4) != 0)
    assert 0 < behind < 24
    lag_events, lag_seconds = cps.lag("lagged", "g")
    assert lag_events == behind and lag_seconds >= 0


def test_a_group_keeps_its_shard_count(pstore: Any) -> None:
    import pytest
    from evstore.core.errors import ConfigurationError

    cps = CheckpointStore(pstore)
    cps.ensure("fixed", "g", 4)
    cps.ensure("fixed", "g", 4)  # the same count again: nothing to refuse
    with pytest.raises(ConfigurationError,
                       match=r"'fixed' group 'g' has .* shards, not 8: keep its shard count"):
        cps.ensure("fixed", "g", 8)
    # refused in one transaction: the rows of shards 4..7 it had added are gone again
    assert [(s.partition, s.partition_count) for s in cps.shards("fixed", "g")] == [
        (0, 4), (1, 4), (2, 4), (3, 4)]
