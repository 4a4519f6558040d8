"""The redelivery bound with several handler threads: a kill repeats at most queue_size events.

A reader process with four handler threads, one of them held for good on
purpose (the slowest a thread can be), is SIGKILLed once nothing more can
happen: the reader waits for room and the other threads have handled all it
admitted, so handled-but-unsaved is at its highest. Whoever continues (the
same checkpoint restarted, or the live member of its group taking its shards)
handles those events again; docs/reader.md promises at most ``queue_size``.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import psycopg
from evstore.core.reader.checkpoints import CheckpointStore
from evstore.core.reader.streams import shard_of

from .consumer_proc import TABLE
from .helpers import all_events, append_many, wait_for
from .test_processes import count, delivered, spawn, stop

BATCH, QUEUE, THREADS = 10, 30, 4
STREAMS = [f"User-{i}" for i in range(40)]
PER_STREAM = 10
TOTAL = len(STREAMS) * PER_STREAM
OPTS = ("--batch", str(BATCH), "--queue", str(QUEUE), "--threads", str(THREADS))


def handled_unsaved(pstore: Any, name: str, group: str, label: str, shards: int) -> int:
    """Events ``label`` handled after the saved checkpoint of their shard."""
    saved = {s.partition: s.position for s in CheckpointStore(pstore).shards(name, group)}
    position = {e.event_id: e.position for e in pstore.iter_all()}
    return sum(1 for lbl, stream, _, event_id in delivered(pstore.url)
               if lbl == label and position[event_id] > saved[shard_of(stream, shards)])


def settled(url: str, label: str, deadline: float = 120.0) -> int:
    """Wait until ``label`` handles nothing more (its held thread blocks the rest); the count.

    "Nothing more" is the count past one batch (the other threads have gone on
    beyond the held one's batch) and unchanged over a quiet interval: the held
    thread never finishes, so there is no event to wait on. A loaded machine can
    pause a member for an interval before it gets that far (its count then
    stands at one batch): that is waited out, not taken for the end.
    """
    end = time.monotonic() + deadline
    last = -1
    while True:
        now = sum(1 for r in delivered(url) if r[0] == label)
        if now == last and now > BATCH:
            return now
        assert time.monotonic() < end, f"{label} still handling after {deadline:.0f} s"
        last = now
        time.sleep(1.5)


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait()


def redeliveries(url: str) -> int:
    return count(url) - count(url, distinct=True)


def test_a_lone_reader_killed_with_a_held_thread_repeats_at_most_queue_size(
    database_url: str, pstore: Any
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(TABLE)
    append_many(pstore, STREAMS, PER_STREAM)
    every = {e.event_id for e in all_events(pstore, TOTAL)}

    # Given a reader with four threads, the one of User-0 held, at its worst moment
    first = spawn(database_url, "proj", "-", "run1", *OPTS, "--hold", "User-0")
    try:
        settled(database_url, "run1")
        unsaved = handled_unsaved(pstore, "proj", "", "run1", 1)
    finally:
        kill(first)
    assert unsaved > BATCH, f"only {unsaved} handled and unsaved: nothing was tested"

    # When it is SIGKILLed and the checkpoint restarted
    second = spawn(database_url, "proj", "-", "run2", *OPTS)
    try:
        wait_for(lambda: count(database_url, distinct=True) == TOTAL, "every event once")
    finally:
        stop(second)

    # Then nothing is lost and at most queue_size events came twice
    assert {r[3] for r in delivered(database_url)} == every
    assert redeliveries(database_url) <= QUEUE, (
        f"{redeliveries(database_url)} events delivered twice with queue_size={QUEUE}")


def test_a_group_member_killed_with_a_held_thread_repeats_at_most_queue_size(
    database_url: str, pstore: Any
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(TABLE)
    cps = CheckpointStore(pstore)
    # Members sort by id, so a owns the even shards of 8: hold one of its streams
    held = next(s for s in STREAMS if shard_of(s, 8) % 2 == 0)
    group = ("--shards", "8", "--ttl", "2", *OPTS)
    a = spawn(database_url, "users", "g", "a", *group, "--hold", held)
    b = spawn(database_url, "users", "g", "b", *group)
    try:
        def split() -> bool:
            owners = [p.owner for p in cps.shards("users", "g") if p.leased]
            return len(owners) == 8 and owners.count("a") == 4 and owners.count("b") == 4
        wait_for(split, "the two members to split the 8 shards")

        # Given member a at its worst moment
        append_many(pstore, STREAMS, PER_STREAM)
        every = {e.event_id for e in all_events(pstore, TOTAL)}
        settled(database_url, "a")
        unsaved = handled_unsaved(pstore, "users", "g", "a", 8)
        assert unsaved > BATCH, f"only {unsaved} handled and unsaved: nothing was tested"

        # When it is SIGKILLed, b takes its shards over from their saved checkpoints
        kill(a)
        wait_for(lambda: count(database_url, distinct=True) == TOTAL, "every event once")
        assert {p.owner for p in cps.shards("users", "g") if p.leased} == {"b"}
    finally:
        stop(a, b)

    # Then nothing is lost and at most queue_size events came twice
    assert {r[3] for r in delivered(database_url)} == every
    assert redeliveries(database_url) <= QUEUE, (
        f"{redeliveries(database_url)} events delivered twice with queue_size={QUEUE}")


def test_the_reader_saves_what_was_handled_before_it_reads_on(pstore: Any) -> None:
    """Batches handled while the reader waited for room are saved before the next page.

    Otherwise the page read meanwhile is handled on top of them, unsaved: one
    page over the bound until the save comes.
    """
    import threading

    from evstore.core.reader.reader import EventStreamReader
    from evstore.core.reader.streams import StreamConfig

    from .helpers import Collector

    append_many(pstore, STREAMS, PER_STREAM)
    all_events(pstore, TOTAL)
    gate, held = threading.Event(), threading.Event()

    def hold_first_of_user_0(e: Any) -> None:
        if e.stream_id == "User-0" and not held.is_set():
            held.set()
            gate.wait()

    got = Collector(on_event=hold_first_of_user_0)
    cfg = StreamConfig("sbr", batch_size=BATCH, queue_size=QUEUE, concurrency=THREADS,
                       lease_ttl=60)  # no heartbeat (it also updates the row) meanwhile
    reader = EventStreamReader(pstore, cfg)
    reader.start(got)
    lock = psycopg.connect(pstore.url)
    try:
        # Given a full queue behind a held first batch, and the checkpoint row locked
        wait_for(lambda: reader.blocked_on_handlers and reader.metrics().events_read == QUEUE,
                 "the reader to fill its queue behind the held batch")
        # (the row exists once the reader has made it: lock it only then)
        wait_for(lambda: lock.execute(f"SELECT 1 FROM {pstore.table('stream_checkpoints')} "
                                      "WHERE checkpoint_name = 'sbr' FOR UPDATE").fetchone()
                 is not None, "the reader's checkpoint row")
        # When the held batch completes, the reader's save waits for the row
        gate.set()
        # (pg_stat_activity is read once per transaction unless the snapshot is
        # cleared, and this connection keeps its transaction open: clear it each time)
        def save_waiting() -> bool:
            lock.execute("SELECT pg_stat_clear_snapshot()")
            row = lock.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%unnest(%'"  # save_checkpoint
            ).fetchone()
            return row is not None and row[0] >= 1  # (a periodic save may wait too)

        wait_for(save_waiting, "the reader's save to wait for the locked row")
        wait_for(lambda: (m := reader.metrics()).processed == m.events_read,
                 "the handlers to handle what was read")
        # Then it read nothing more meanwhile: nothing handled beyond the queue is unsaved
        assert reader.metrics().events_read == QUEUE and len(got) == QUEUE
        # And once the row is free it saves and reads on to the end
        lock.rollback()
        wait_for(lambda: len(got) == TOTAL, "every event")
    finally:
        gate.set()
        lock.rollback()
        lock.close()
        reader.stop()
        reader.join(timeout=30)
