"""Many writers, one stream: exactly one append wins each version, positions stay 1..n."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from evstore import NO_STREAM, AppendResult, ConcurrencyError

from .helpers import counts, ev, raw, wait_visible

THREADS = 8


def _race(store: Any, stream: str, rounds: int, batch_of: Any) -> dict[str, Any]:
    """Every round, all threads append to `stream` expecting the same version at once."""
    barrier = threading.Barrier(THREADS)
    version_lock = threading.Lock()
    state: dict[str, Any] = {"version": 0}
    wins: list[tuple[int, AppendResult, list[Any]]] = []
    losses: list[tuple[int, ConcurrencyError]] = []

    def writer(tid: int) -> None:
        for r in range(rounds):
            barrier.wait()
            expected = state["version"]
            batch = [ev(stream, "Raced", {"tid": tid, "round": r, "i": i})
                     for i in range(batch_of(tid, r))]
            try:
                result = store.append_events(
                    stream, batch, expected_version=NO_STREAM if expected == 0 else expected
                )
                with version_lock:
                    wins.append((expected, result, batch))
            except ConcurrencyError as exc:
                with version_lock:
                    losses.append((expected, exc))
            barrier.wait()
            if tid == 0:  # one thread publishes the version for the next round
                state["version"] = store.get_stream_version(stream)
            barrier.wait()

    with ThreadPoolExecutor(THREADS) as pool:
        for f in [pool.submit(writer, t) for t in range(THREADS)]:
            f.result(timeout=120)
    return {"wins": wins, "losses": losses, "version": state["version"]}


def _check(store: Any, pg_url: str, stream: str, rounds: int, out: dict[str, Any]) -> None:
    wins, losses = out["wins"], out["losses"]
    # Exactly one winner per round; everyone else lost with a precise error.
    assert Counter(expected for expected, _, _ in wins) == {
        expected: 1 for expected, _, _ in wins
    }
    assert len(wins) == rounds
    assert len(losses) == rounds * (THREADS - 1)
    after = {expected: result.version for expected, result, _ in wins}
    for expected, exc in losses:
        assert exc.stream_id == stream
        assert exc.expected_version == (expected if expected else NO_STREAM)
        assert exc.actual_version == after[expected]
        assert stream in str(exc)

    # The stream holds exactly the winners' events, at positions 1..n in order.
    events = store.read_stream(stream)
    n = sum(len(batch) for _, _, batch in wins)
    assert [e.stream_position for e in events] == list(range(1, n + 1))
    assert store.get_stream_version(stream) == n == out["version"]
    winners = [e.event_id for _, _, batch in sorted(wins, key=lambda w: w[0]) for e in batch]
    assert [e.event_id for e in events] == winners
    for expected, result, batch in wins:
        assert result.version == expected + len(batch)
        stored = {e.event_id: e.global_position for e in events}
        assert result.global_positions == [stored[e.event_id] for e in batch]

    # And no loser left a row behind, not even in another partition or stream.
    assert counts(pg_url)["events"] == n
    with raw(pg_url) as conn:
        dupes = conn.execute(
            "SELECT stream_position FROM events.events WHERE stream_id = %s "
            "GROUP BY 1 HAVING count(*) > 1", [stream]
        ).fetchall()
    assert dupes == []


def test_one_winner_per_version_single_events(store: Any, pg_url: str) -> None:
    # Given 8 threads that all expect the same version of one stream, 60 times over
    # When they append one event each at the same moment
    out = _race(store, "User-race", 60, lambda tid, r: 1)
    # Then each version has one winner and the stream is gap-free
    _check(store, pg_url, "User-race", 60, out)


def test_one_winner_per_version_mixed_batches(store: Any, pg_url: str) -> None:
    # Batches of 1-3 events, and some over the COPY threshold (70 events): a
    # winner's batch lands whole and contiguous, a loser's not at all.
    def size(tid: int, r: int) -> int:
        return 70 if (tid + r) % 5 == 0 else 1 + (tid + r) % 3

    out = _race(store, "User-batch-race", 25, size)
    _check(store, pg_url, "User-batch-race", 25, out)


def test_free_running_writers_retry_until_they_win(store: Any, pg_url: str) -> None:
    # Given 8 threads that each want 25 events in one stream, retrying on conflict
    stream = "User-free"
    mine: dict[int, list[Any]] = {t: [] for t in range(THREADS)}
    conflicts = Counter[int]()

    def writer(tid: int) -> None:
        while len(mine[tid]) < 25:
            event = ev(stream, "Raced", {"tid": tid})
            version = store.get_stream_version(stream)
            try:
                store.append_events(stream, [event], expected_version=version)
                mine[tid].append(event.event_id)
            except ConcurrencyError as exc:
                assert exc.actual_version > version
                conflicts[tid] += 1

    # When they run freely
    with ThreadPoolExecutor(THREADS) as pool:
        for f in [pool.submit(writer, t) for t in range(THREADS)]:
            f.result(timeout=120)

    # Then every success is stored once, in positions 1..200, and each thread's
    # own events appear in the order it appended them
    events = store.read_stream(stream)
    assert [e.stream_position for e in events] == list(range(1, 201))
    assert sorted(str(e.event_id) for e in events) == sorted(
        str(i) for ids in mine.values() for i in ids
    )
    for tid, ids in mine.items():
        assert [e.event_id for e in events if e.event_data["tid"] == tid] == ids
    assert counts(pg_url)["events"] == 200


def test_concurrent_retries_of_one_batch_store_it_once(store: Any, pg_url: str) -> None:
    # Given one batch that 8 threads (say, redeliveries of one message) append at once
    batch = [ev("dup", "UserCreated"), ev("dup", "UserUpdated")]
    barrier = threading.Barrier(THREADS)

    def append(_: int) -> AppendResult:
        barrier.wait()
        result: AppendResult = store.append_events("User-dup", batch, expected_version=NO_STREAM)
        return result

    with ThreadPoolExecutor(THREADS) as pool:
        results = [f.result(timeout=60) for f in [pool.submit(append, t) for t in range(THREADS)]]
    # Then all succeed, one of them wrote, the others were told it was a retry
    assert sorted(r.deduplicated for r in results) == [False] + [True] * (THREADS - 1)
    assert {tuple(r.global_positions) for r in results} == {tuple(results[0].global_positions)}
    assert counts(pg_url)["events"] == 2 and store.get_stream_version("User-dup") == 2


def _wait_for_lock_waiter(pg_url: str, present: bool) -> None:
    deadline = time.monotonic() + 30
    while True:
        with raw(pg_url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            ).fetchone()
        if bool(row and row[0]) == present:
            return
        assert time.monotonic() < deadline, "the blocked append never started waiting"
        time.sleep(0.02)


def test_a_blocked_stream_does_not_block_other_streams_or_readers(store: Any, pg_url: str) -> None:
    store.append_events("User-A", [ev("A")])
    wait_visible(store, 1)
    with raw(pg_url, autocommit=False) as holder:
        # Given another session holding the per-stream lock of User-A
        holder.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ["events:User-A"]
        )
        blocked = ThreadPoolExecutor(1)
        pending = blocked.submit(store.append_events, "User-A", [ev("A", "UserUpdated")], 1)
        _wait_for_lock_waiter(pg_url, present=True)
        # When another stream is appended to meanwhile
        other = ev("B")
        store.append_events("User-B", [other])
        # Then it commits, and a reader sees it: the waiting writer holds no
        # transaction id yet, so it does not hold back the global order
        assert not pending.done()
        assert [e.event_id for e in wait_visible(store, 2)][-1] == other.event_id
        holder.rollback()
    # And once the lock is released the blocked append goes through
    assert pending.result(timeout=30).version == 2
    blocked.shutdown()
    assert [e.stream_position for e in store.read_stream("User-A")] == [1, 2]
