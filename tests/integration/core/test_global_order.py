"""read_all under concurrency: a checkpointed reader sees every event exactly once.

The mechanism under test (docs/global-order.md): rows carry their writer's
transaction id, and read_all returns only rows of transactions older than the
oldest one still running, in (transaction id, global position) order.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from evstore.core import checksums
from evstore.core.keys import keyring
from evstore.core.serialization import jsonb_text

from evstore import ANY, START, EventRecord, Position, load_settings

from .helpers import ev, raw

DEADLINE = 60.0


class Reader:
    """A follower that stores its checkpoint as text, like a real consumer would."""

    def __init__(self, store: Any, checkpoint: str = str(START), limit: int = 37) -> None:
        self.store = store
        self.checkpoint = checkpoint
        self.limit = limit
        self.seen: list[EventRecord] = []

    def poll(self) -> bool:
        page = self.store.read_all(after=Position.parse(self.checkpoint), limit=self.limit)
        assert page.checkpoint >= Position.parse(self.checkpoint), "checkpoint went backwards"
        self.seen.extend(page.events)
        self.checkpoint = str(page.checkpoint)
        return page.at_end

    def follow(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if self.poll():
                time.sleep(0.002)

    def drain_until(self, wanted: set[uuid.UUID]) -> None:
        """Poll until every wanted event was seen (other sessions may hold the horizon)."""
        deadline = time.monotonic() + DEADLINE
        while not wanted <= {e.event_id for e in self.seen}:
            assert time.monotonic() < deadline, (
                f"reader still misses {len(wanted - {e.event_id for e in self.seen})} events"
            )
            if self.poll():
                time.sleep(0.01)


def _assert_exactly_once_in_stream_order(seen: list[EventRecord], committed: set[uuid.UUID]) -> None:
    ids = [e.event_id for e in seen]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert set(ids) == committed, "the reader missed events or saw uncommitted ones"
    by_stream: dict[str, list[int]] = defaultdict(list)
    for e in seen:
        assert e.stream_position is not None and e.stream_id is not None
        by_stream[e.stream_id].append(e.stream_position)
    for stream, positions in by_stream.items():
        assert positions == list(range(1, len(positions) + 1)), f"{stream} out of order"
    keys = [e.position for e in seen]
    assert keys == sorted(keys), "global order is not (transaction, position)"


def test_reader_sees_every_event_once_while_writers_run(store: Any) -> None:
    # Given 6 writers on their own streams, 2 writers appending with ANY to a
    # shared stream, and a reader following read_all with a stored checkpoint
    committed: set[uuid.UUID] = set()
    lock = threading.Lock()
    checkpoint = str(START)
    seen: list[EventRecord] = []

    def own_streams(tid: int, rnd: int) -> None:
        for k in range(30):
            stream = f"User-{tid}-{k % 5}"
            version = store.get_stream_version(stream)
            batch = [ev(f"{tid}-{k % 5}", "UserUpdated", {"r": rnd, "k": k, "i": i})
                     for i in range(1 + k % 3)]
            store.append_events(stream, batch, expected_version=version)
            with lock:
                committed.update(e.event_id for e in batch)

    def shared_stream(tid: int, rnd: int) -> None:
        for k in range(30):
            batch = [ev("shared", "UserLoggedIn", {"tid": tid, "r": rnd, "k": k})]
            store.append_events("User-shared", batch, expected_version=ANY)
            with lock:
                committed.update(e.event_id for e in batch)

    for rnd in range(6):
        # When a round of writers runs while a (restarted) reader follows
        reader = Reader(store, checkpoint)
        stop = threading.Event()
        follower = threading.Thread(target=reader.follow, args=(stop,))
        follower.start()
        with ThreadPoolExecutor(8) as pool:
            jobs = [pool.submit(own_streams, t, rnd) for t in range(6)]
            jobs += [pool.submit(shared_stream, t, rnd) for t in range(6, 8)]
            for job in jobs:
                job.result(timeout=120)
        stop.set()
        follower.join(timeout=30)
        reader.drain_until(committed - {e.event_id for e in seen})
        seen.extend(reader.seen)
        checkpoint = reader.checkpoint
        # Then, after every round, what it saw is exactly what was committed
        _assert_exactly_once_in_stream_order(seen, committed)

    # And once caught up, the next page is empty and at the end
    last = store.read_all(after=Position.parse(checkpoint))
    assert last.events == [] and last.at_end
    assert len(seen) == len(committed) == store.metrics(exact=True).events


def _insert_late(conn: Any, event: EventRecord, stream_id: str) -> None:
    """Write one event the way an append does, with raw SQL, inside conn's transaction."""
    data_json = jsonb_text(event.event_data)
    metadata_json = jsonb_text(event.metadata.to_dict())
    digest = checksums.sign(keyring(load_settings()), checksums.message(
        event.event_id, stream_id, 1, event.aggregate_id, event.aggregate_type, event.event_type,
        event.event_version, 1, event.created_at, data_json.encode(), metadata_json.encode()))
    conn.execute(
        "INSERT INTO events.streams (stream_id, aggregate_id, aggregate_type, version) "
        "VALUES (%s, %s, %s, 1)", [stream_id, event.aggregate_id, event.aggregate_type],
    )
    conn.execute(
        "INSERT INTO events.events (event_id, aggregate_id, aggregate_type, event_type, "
        "event_version, aggregate_version, stream_id, stream_position, event_data, metadata, "
        "created_at, checksum, original_size, stored_size) "
        "VALUES (%s, %s, %s, %s, %s, 1, %s, 1, %s::jsonb, %s::jsonb, %s, %s, %s, %s)",
        [event.event_id, event.aggregate_id, event.aggregate_type, event.event_type,
         event.event_version, stream_id, data_json, metadata_json, event.created_at, digest,
         len(data_json), len(data_json)],
    )


def test_late_committing_transaction_is_not_skipped(store: Any, pg_url: str) -> None:
    # Given a reader that has read everything so far
    early = ev("early", "UserCreated")
    store.append_events("User-early", [early])
    reader = Reader(store)
    reader.drain_until({early.event_id})

    late = ev("late", "UserCreated", {"late": True}, created_at=datetime.now(UTC))
    with raw(pg_url, autocommit=False) as slow:
        # And a transaction that takes its transaction id and a global position
        # first, writes an event, and stays open
        xid = int(slow.execute("SELECT pg_current_xact_id()::text").fetchone()[0])
        _insert_late(slow, late, "User-late")
        late_position = slow.execute(
            "SELECT global_position FROM events.events WHERE event_id = %s", [late.event_id]
        ).fetchone()[0]

        # When other writers append and commit after it
        after = [ev(f"after-{i}", "UserCreated") for i in range(20)]
        results = [store.append_events(f"User-after-{i}", [e]) for i, e in enumerate(after)]
        assert all(r.transaction_id > xid for r in results)
        assert all(r.global_positions[0] > late_position for r in results)

        # Then the reader sees none of them and its checkpoint stays before the
        # open transaction: reading them now would mean skipping the late event
        for _ in range(3):
            reader.poll()
        assert [e.event_id for e in reader.seen] == [early.event_id]
        assert Position.parse(reader.checkpoint) < Position(xid, late_position)

        slow.commit()

    # When it commits, the reader gets the late event first, then the others, once each
    reader.drain_until({late.event_id} | {e.event_id for e in after})
    assert [e.event_id for e in reader.seen] == (
        [early.event_id, late.event_id] + [e.event_id for e in after]
    )
    assert reader.seen[1].event_data == {"late": True}  # and its checksum verified on read
    assert store.verify().ok
