"""`evstore consumers`: list with checkpoint and lag, show, reset --to / --to-time, delete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from evstore.core.reader.checkpoints import CheckpointStore
from evstore.core.reader.reader import EventStreamReader
from evstore.core.reader.streams import StreamConfig, StreamReadMode
from evstore.core.store.persistence import START

from .helpers import all_events, append, wait_for


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("EVENT_STORE_")}
    e["DATABASE_URL"] = database_url
    e["COLUMNS"] = "200"
    return e


def evstore(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evstore.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_list_reset_and_delete(env: dict[str, str], pstore: Any) -> None:
    append(pstore, "User-1", 6)
    all_events(pstore, 6)
    EventStreamReader(pstore, StreamConfig("emails", mode=StreamReadMode.BATCH)).run(lambda e: None)
    append(pstore, "User-2", 4)
    wait_for(lambda: CheckpointStore(pstore).lag("emails")[0] == 4, "the lag to show")

    out = evstore(env, "consumers", "--json")
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)
    assert (row["checkpoint_name"], row["consumer_group"], row["lag_events"]) == ("emails", "", 4)
    assert row["events_processed"] == 6 and row["lag_seconds"] >= 0
    table = evstore(env, "consumers")
    assert table.returncode == 0 and "emails" in table.stdout, table.stderr

    # --to start: everything is to read again
    out = evstore(env, "consumers", "reset", "emails", "--to", "start")
    assert out.returncode == 0, out.stderr
    assert CheckpointStore(pstore).position("emails") == START
    assert CheckpointStore(pstore).lag("emails")[0] == 10

    # --to-time: just before the events stored after that time
    out = evstore(env, "consumers", "reset", "emails", "--to-time",
                  (datetime.now(UTC) - timedelta(hours=1)).isoformat())
    assert out.returncode == 0, out.stderr
    assert CheckpointStore(pstore).lag("emails")[0] == 10
    out = evstore(env, "consumers", "reset", "emails", "--to", "head")
    assert out.returncode == 0 and CheckpointStore(pstore).lag("emails")[0] == 0

    show = evstore(env, "consumers", "show", "emails", "--json")
    assert json.loads(show.stdout)["partitions"][0]["partition"] == 0

    assert evstore(env, "consumers", "delete", "emails").returncode == 0
    assert CheckpointStore(pstore).partitions("emails") == []


def test_reset_by_time_between_events(env: dict[str, str], pstore: Any) -> None:
    append(pstore, "User-1", 3)
    cut = datetime.now(UTC)
    append(pstore, "User-2", 2)
    all_events(pstore, 5)
    EventStreamReader(pstore, StreamConfig("t", mode=StreamReadMode.BATCH)).run(lambda e: None)
    out = evstore(env, "consumers", "reset", "t", "--to-time", cut.isoformat())
    assert out.returncode == 0, out.stderr
    assert CheckpointStore(pstore).lag("t")[0] == 2


def test_refusals(env: dict[str, str], pstore: Any) -> None:
    out = evstore(env, "consumers", "reset", "nobody", "--to", "start")
    assert out.returncode == 1 and "no consumer checkpoint named 'nobody'" in out.stderr
    out = evstore(env, "consumers", "reset", "x", "--to", "start", "--to-time", "2024-01-01")
    assert out.returncode == 2 and "exactly one of" in out.stderr
    out = evstore(env, "consumers", "reset", "x", "--to", "12-4")
    assert out.returncode == 2 and "invalid checkpoint" in out.stderr

    cfg = StreamConfig("busy", mode=StreamReadMode.CATCH_UP)
    with EventStreamReader(pstore, cfg) as reader:
        reader.start(lambda e: None)
        wait_for(reader.running.is_set, "the reader")
        out = evstore(env, "consumers", "reset", "busy", "--to", "start")
        assert out.returncode == 1 and "stop it first" in out.stderr
