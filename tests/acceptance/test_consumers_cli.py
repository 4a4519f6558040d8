"""`evstore consumers`: list with checkpoint and lag, show, reset --to / --to-time, delete."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from evstore.core.reader.checkpoints import CheckpointStore
from evstore.core.reader.reader import EventStreamReader
from evstore.core.reader.streams import StreamConfig, StreamReadMode
from evstore.core.store.persistence import START

from tests.integration.reader.helpers import all_events, append, wait_for

from .helpers import evstore


def test_list_reset_and_delete(env: dict[str, str], pstore: Any) -> None:
    append(pstore, "User-1", 6)
    all_events(pstore, 6)
    EventStreamReader(pstore, StreamConfig("emails", mode=StreamReadMode.BATCH)).run(lambda e: None)
    append(pstore, "User-2", 4)
    wait_for(lambda: CheckpointStore(pstore).lag("emails")[0] == 4, "the lag to show")

    out = evstore(["consumers", "--json"], env)
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)
    assert (row["checkpoint_name"], row["consumer_group"], row["lag_events"]) == ("emails", "", 4)
    assert row["events_processed"] == 6 and row["lag_seconds"] >= 0
    table = evstore(["consumers"], env)
    assert table.returncode == 0 and "emails" in table.stdout, table.stderr

    # --to start: everything is to read again
    out = evstore(["consumers", "reset", "emails", "--to", "start"], env)
    assert out.returncode == 0, out.stderr
    assert CheckpointStore(pstore).position("emails") == START
    assert CheckpointStore(pstore).lag("emails")[0] == 10

    # --to-time: just before the events stored after that time
    out = evstore(["consumers", "reset", "emails", "--to-time",
                   (datetime.now(UTC) - timedelta(hours=1)).isoformat()], env)
    assert out.returncode == 0, out.stderr
    assert CheckpointStore(pstore).lag("emails")[0] == 10
    out = evstore(["consumers", "reset", "emails", "--to", "head"], env)
    assert out.returncode == 0 and CheckpointStore(pstore).lag("emails")[0] == 0

    show = evstore(["consumers", "show", "emails", "--json"], env)
    assert json.loads(show.stdout)["partitions"][0]["partition"] == 0

    assert evstore(["consumers", "delete", "emails"], env).returncode == 0
    assert CheckpointStore(pstore).shards("emails") == []


def test_reset_by_time_between_events(env: dict[str, str], pstore: Any) -> None:
    append(pstore, "User-1", 3)
    cut = datetime.now(UTC)
    append(pstore, "User-2", 2)
    all_events(pstore, 5)
    EventStreamReader(pstore, StreamConfig("t", mode=StreamReadMode.BATCH)).run(lambda e: None)
    out = evstore(["consumers", "reset", "t", "--to-time", cut.isoformat()], env)
    assert out.returncode == 0, out.stderr
    assert CheckpointStore(pstore).lag("t")[0] == 2


def test_refusals(env: dict[str, str], pstore: Any) -> None:
    out = evstore(["consumers", "reset", "nobody", "--to", "start"], env)
    assert out.returncode == 1 and "no consumer checkpoint named 'nobody'" in out.stderr
    out = evstore(["consumers", "reset", "x", "--to", "start", "--to-time", "2024-01-01"], env)
    assert out.returncode == 2 and "exactly one of" in out.stderr
    out = evstore(["consumers", "reset", "x", "--to", "12-4"], env)
    assert out.returncode == 2 and "invalid checkpoint" in out.stderr

    cfg = StreamConfig("busy", mode=StreamReadMode.CATCH_UP)
    with EventStreamReader(pstore, cfg) as reader:
        reader.start(lambda e: None)
        wait_for(reader.running.is_set, "the reader")
        out = evstore(["consumers", "reset", "busy", "--to", "start"], env)
        assert out.returncode == 1 and "stop it first" in out.stderr
