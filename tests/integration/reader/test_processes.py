"""Readers in separate processes: restart after SIGKILL, consumer groups, hand-over."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
from evstore.core.reader.checkpoints import CheckpointStore

from .consumer_proc import TABLE
from .helpers import all_events, append_many, wait_for

SCRIPT = Path(__file__).with_name("consumer_proc.py")


def spawn(url: str, name: str, group: str, label: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(SCRIPT), url, name, group, label, *extra])


def delivered(url: str) -> list[tuple[str, str, int, Any]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            "SELECT label, stream_id, stream_position, event_id FROM public.delivered ORDER BY id")]


def count(url: str, distinct: bool = False) -> int:
    what = "count(DISTINCT event_id)" if distinct else "count(*)"
    with psycopg.connect(url) as conn:
        return int(conn.execute(f"SELECT {what} FROM public.delivered").fetchone()[0])  # type: ignore[index]


def first_deliveries(rows: list[tuple[str, str, int, Any]]) -> dict[str, list[int]]:
    """Per stream, positions in the order they were first handled."""
    seen: set[Any] = set()
    out: dict[str, list[int]] = {}
    for _, stream, pos, event_id in rows:
        if event_id not in seen:
            seen.add(event_id)
            out.setdefault(stream, []).append(pos)
    return out


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        assert p.wait(timeout=30) == 0 or p.returncode == -9


def test_restart_after_sigkill_continues_without_loss(database_url: str, pstore: Any) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(TABLE)
    streams = [f"User-{i}" for i in range(6)]
    append_many(pstore, streams, 50, chunk=10)
    every = {e.event_id for e in all_events(pstore, 300)}

    # Given a reader killed in the middle of its work
    first = spawn(database_url, "proj", "-", "run1", "--delay", "0.003")
    try:
        wait_for(lambda: count(database_url) >= 100, "the first reader to handle 100 events")
    finally:
        first.kill()
        first.wait()
    at_kill = count(database_url)
    assert at_kill < 300, "the reader finished before it was killed: nothing was tested"

    # When a new process takes the same checkpoint
    second = spawn(database_url, "proj", "-", "run2")
    try:
        wait_for(lambda: count(database_url, distinct=True) == 300, "every event once")
    finally:
        stop(second)

    # Then nothing is lost, at most one unsaved batch (queue = batch = 10) came twice,
    # and each stream's events were first handled in order
    rows = delivered(database_url)
    assert {r[3] for r in rows} == every
    assert len(rows) - 300 <= 10
    assert all(ps == list(range(1, 51)) for ps in first_deliveries(rows).values())
    assert {r[0] for r in rows} == {"run1", "run2"}


def test_group_members_in_two_processes_split_streams_and_hand_over(
    database_url: str, pstore: Any
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(TABLE)
    cps = CheckpointStore(pstore)
    opts = ("--shards", "8", "--ttl", "2")
    a = spawn(database_url, "users", "g", "a", *opts)
    b = spawn(database_url, "users", "g", "b", *opts)
    try:
        def split() -> bool:
            owners = [p.owner for p in cps.shards("users", "g") if p.leased]
            return len(owners) == 8 and owners.count("a") == 4 and owners.count("b") == 4
        wait_for(split, "the two members to split the 8 shards")

        streams = [f"User-{i}" for i in range(16)]
        append_many(pstore, streams, 10)
        wait_for(lambda: count(database_url) >= 160, "160 events handled")
        rows = delivered(database_url)
        owner_of = {}
        for stream in streams:
            labels = {r[0] for r in rows if r[1] == stream}
            assert len(labels) == 1, f"{stream} was handled by {labels}"
            owner_of[stream] = labels.pop()
        assert set(owner_of.values()) == {"a", "b"}
        assert all(ps == list(range(1, 11)) for ps in first_deliveries(rows).values())
        assert len(rows) == 160  # a clean split: nothing twice

        # When member a dies, b takes its streams and continues them in order
        a.kill()
        a.wait()
        append_many(pstore, streams, 5)
        wait_for(lambda: count(database_url, distinct=True) == 240, "240 events handled")
        rows = delivered(database_url)
        assert all(ps == list(range(1, 16)) for ps in first_deliveries(rows).values())
        late = {r[1]: r[0] for r in rows if r[2] > 10}
        assert set(late.values()) == {"b"}
        assert {s for s, o in owner_of.items() if o == "a"} <= set(late)
    finally:
        stop(a, b)
