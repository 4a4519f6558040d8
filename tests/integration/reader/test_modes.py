"""Each read mode of EventStreamReader, filters, checkpoints and handler failures.

Live modes also: a filter on a type nobody appended yet, and a transaction that
commits late (never skipped).
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from evstore.core.errors import ConsumerBusyError, HandlerError, UnknownEventTypeError
from evstore.core.reader.checkpoints import CheckpointStore
from evstore.core.reader.reader import EventStreamReader
from evstore.core.reader.streams import StreamConfig, StreamReadMode

from evstore import EventRecord

from .helpers import Collector, all_events, append, append_many, ev, wait_for

BATCH = StreamReadMode.BATCH
LOCK = 4242
BLOCKER = """
CREATE FUNCTION public.block_late() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(4242);
    RETURN NULL;
END $$;
CREATE TRIGGER block_late AFTER INSERT ON events.events
    FOR EACH ROW WHEN (NEW.event_type = 'Late') EXECUTE FUNCTION public.block_late();
"""


def ids(events: list[EventRecord]) -> list[Any]:
    return [e.event_id for e in events]


def test_batch_reads_what_exists_saves_and_resumes(pstore: Any) -> None:
    append_many(pstore, ["User-a", "User-b", "User-c"], 10)
    everything = all_events(pstore, 30)

    first = Collector()
    EventStreamReader(pstore, StreamConfig("proj", mode=BATCH, batch_size=7)).run(first)
    assert ids(first.events) == ids(everything)  # the global order, each once

    append(pstore, "User-d", 4)
    second = Collector()
    m = EventStreamReader(pstore, StreamConfig("proj", mode=BATCH, batch_size=7)).run(second)
    assert [e.stream_id for e in second.events] == ["User-d"] * 4
    assert m.checkpoint == CheckpointStore(pstore).position("proj")
    assert m.lag_events == 0


def test_catch_up_reads_history_then_follows_live(store: Any) -> None:
    # Runs on both servers: the trigger and LISTEN/NOTIFY must work on each.
    append(store, "User-1", 5)
    got = Collector()
    cfg = StreamConfig("live", mode=StreamReadMode.CATCH_UP, batch_size=3, poll_interval=30)
    with EventStreamReader(store, cfg) as reader:
        reader.start(got)
        wait_for(lambda: len(got) == 5, "the history")
        append(store, "User-2", 4)
        # poll_interval is 30 s: arriving within the deadline needs the notification.
        wait_for(lambda: len(got) == 9, "the live events")
        assert reader.metrics().processed == 9
    assert ids(got.events) == ids(all_events(store, 9))


def test_streaming_only_delivers_events_appended_after_start(pstore: Any) -> None:
    append(pstore, "User-old", 6)
    got = Collector()
    cfg = StreamConfig("tail", mode=StreamReadMode.STREAMING)
    with EventStreamReader(pstore, cfg) as reader:
        reader.start(got)
        wait_for(reader.running.is_set, "the reader to start")
        append(pstore, "User-new", 3)
        wait_for(lambda: len(got) == 3, "the new events")
    assert {e.stream_id for e in got.events} == {"User-new"}


def test_replay_reads_everything_and_leaves_the_checkpoint(pstore: Any) -> None:
    append(pstore, "User-r", 8)
    EventStreamReader(pstore, StreamConfig("rm", mode=BATCH)).run(Collector())
    saved = CheckpointStore(pstore).shards("rm")
    append(pstore, "User-s", 2)

    got = Collector()
    EventStreamReader(pstore, StreamConfig("rm", mode=StreamReadMode.REPLAY, batch_size=3)).run(got)
    assert len(got) == 10
    assert CheckpointStore(pstore).shards("rm") == saved
    # and a REPLAY under a new name leaves no checkpoint behind
    EventStreamReader(pstore, StreamConfig("rm2", mode=StreamReadMode.REPLAY)).run(Collector())
    assert CheckpointStore(pstore).shards("rm2") == []


def test_filters_by_event_and_aggregate_type(pstore: Any) -> None:
    append(pstore, "User-1", 3, event_type="UserCreated")
    append(pstore, "User-2", 2, event_type="EmailChanged")
    append(pstore, "Org-1", 4, event_type="UserCreated", aggregate_type="Org")

    by_type = Collector()
    EventStreamReader(pstore, StreamConfig(
        "f1", mode=BATCH, event_types=["EmailChanged"])).run(by_type)
    assert [e.event_type for e in by_type.events] == ["EmailChanged"] * 2

    by_aggregate = Collector()
    EventStreamReader(pstore, StreamConfig(
        "f2", mode=BATCH, aggregate_types=["Org"], batch_size=2)).run(by_aggregate)
    assert [e.stream_id for e in by_aggregate.events] == ["Org-1"] * 4
    # The checkpoint moved past what the filter skipped: no lag left.
    assert CheckpointStore(pstore).lag("f2") == (0, 0.0)


def test_parallel_handlers_keep_each_streams_order(pstore: Any) -> None:
    streams = [f"User-{i}" for i in range(12)]
    append_many(pstore, streams, 15, chunk=5)
    got = Collector()
    EventStreamReader(pstore, StreamConfig("par", mode=BATCH, batch_size=40, concurrency=4)).run(got)
    assert len(got) == 180
    assert len(got.threads) > 1
    for stream, positions in got.by_stream().items():
        assert positions == list(range(1, 16)), stream


def test_slow_handler_keeps_read_ahead_bounded(pstore: Any) -> None:
    append_many(pstore, [f"User-{i}" for i in range(5)], 60)  # 300 events
    gate = threading.Semaphore(0)
    got = Collector(on_event=lambda e: gate.acquire())
    cfg = StreamConfig("slow", mode=BATCH, batch_size=10, queue_size=20)
    reader = EventStreamReader(pstore, cfg)
    reader.start(got)
    # The handler is stuck on its first event: the reader fills the queue, then waits.
    wait_for(lambda: reader.blocked_on_handlers and reader.metrics().read_ahead == 20,
             "the reader to block on a full queue")
    assert reader.metrics().events_read == 20  # not 300: it stopped reading
    for _ in range(300):
        gate.release()
        m = reader.metrics()
        assert m.events_read - m.processed <= 20
    reader.join(timeout=30)
    m = reader.metrics()
    assert len(got) == 300 and m.max_read_ahead <= 20


def test_handler_failure_keeps_the_checkpoint_before_the_failed_batch(pstore: Any) -> None:
    append(pstore, "User-x", 25)

    def fail_on_13(e: EventRecord) -> None:
        if e.stream_position == 13:
            raise RuntimeError("boom")

    cfg = StreamConfig("err", mode=BATCH, batch_size=5, queue_size=5)
    with pytest.raises(HandlerError, match="boom"):
        EventStreamReader(pstore, cfg).run(fail_on_13)
    got = Collector()
    EventStreamReader(pstore, cfg).run(got)
    # positions 1-10 were saved; the failed batch (11-15) is delivered again
    assert [e.stream_position for e in got.events] == list(range(11, 26))


def test_second_reader_of_the_same_name_without_group_is_refused(pstore: Any) -> None:
    append(pstore, "User-1", 2)
    cfg = StreamConfig("solo", mode=StreamReadMode.CATCH_UP, lease_ttl=1.0)
    with EventStreamReader(pstore, cfg) as first:
        first.start(Collector())
        wait_for(first.running.is_set, "the first reader")
        with pytest.raises(ConsumerBusyError, match="solo"):
            EventStreamReader(pstore, StreamConfig("solo", mode=BATCH, lease_ttl=1.0)).run(
                Collector())


def test_catch_up_reader_waits_for_a_type_not_stored_yet(pstore: Any) -> None:
    # Given a store where "UserDeleted" was never appended
    append(pstore, "User-a", 3, event_type="UserRegistered")
    with pytest.raises(UnknownEventTypeError):
        pstore.read_all(event_types=["UserDeleted"])  # a one-off query: a typo is an error
    # When a live reader subscribes to it
    got = Collector()
    reader = EventStreamReader(
        pstore, StreamConfig("deletions", mode=StreamReadMode.CATCH_UP, event_types=["UserDeleted"])
    )
    reader.start(got)
    try:
        wait_for(lambda: reader.metrics().reads >= 2, "the reader to have read (and found nothing)")
        append(pstore, "User-b", 2, event_type="UserDeleted")
        # Then it starts without error and receives the new type's events only
        wait_for(lambda: len(got.events) == 2, "the two UserDeleted events")
    finally:
        reader.stop()
        reader.join()
    assert {e.event_type for e in got.events} == {"UserDeleted"}


def test_late_committing_transaction_is_not_skipped(database_url: str, pstore: Any) -> None:
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(BLOCKER)
        got = Collector()
        cfg = StreamConfig("late", mode=StreamReadMode.CATCH_UP, poll_interval=0.2)
        with EventStreamReader(pstore, cfg) as reader:
            reader.start(got)
            wait_for(reader.running.is_set, "the reader to start")

            # Given an append that took its global position and waits to commit
            admin.execute("SELECT pg_advisory_lock(%s)", [LOCK])
            late = threading.Thread(target=pstore.append_events,
                                    args=("User-late", [ev("User-late", 0, "Late")]))
            late.start()
            wait_for(lambda: admin.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND objid = %s AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())", [LOCK]
            ).fetchone()[0] == 1, "the late append to wait on its lock")

            # When a later append (a higher position) commits and the reader reads past it
            pstore.append_events("User-early", [ev("User-early", 0)])
            reads = reader.reads
            wait_for(lambda: reader.reads >= reads + 2, "the reader to look twice")
            assert len(got) == 0  # the early commit is held back behind the running one

            # Then once the late one commits, both arrive, in the global order
            admin.execute("SELECT pg_advisory_unlock(%s)", [LOCK])
            late.join(timeout=30)
            wait_for(lambda: len(got) == 2, "both events")
        late_event, early_event = got.events
        assert late_event.stream_id == "User-late" and early_event.stream_id == "User-early"
        assert late_event.global_position < early_event.global_position  # the race happened
