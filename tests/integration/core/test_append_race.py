"""Many writers, one stream: exactly one append wins each version, positions stay 1..n."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from evstore import NO_STREAM, AppendResult, ConcurrencyError

from .helpers import counts, ev, raw

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
        assert exc.expected_version == (expected if expected else "no stream")
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
