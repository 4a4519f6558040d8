"""Archived history stays readable (issue 13): the catalog, read-through, and
ArchivedHistoryError instead of a partial history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from evstore.core.archive import ArchivalPolicy, readthrough, run_policy
from evstore.core.archive.catalog import backfill_catalog, stream_catalog, tier_stats
from evstore.core.errors import ArchivedHistoryError
from evstore.core.snapshots.store import SnapshotStore

from evstore import EventRecord, PostgreSQLEventStore
from evstore.workload import UserAccount, generate

from .conftest import Emulators, target_url_for
from .helpers import month_start, populate

NOW = month_start(0).replace(day=20)


def fingerprint(events: list[Any]) -> list[tuple[Any, ...]]:
    return [(e.event_id, e.stream_id, e.stream_position, e.global_position, e.transaction_id,
             e.event_type, e.event_data, e.metadata, e.checksum, e.created_at) for e in events]


def reset_caches(store: PostgreSQLEventStore, folder: Path) -> None:
    readthrough._parsed.clear()
    store.settings = store.settings.model_copy(update={"archive_cache_dir": folder})


def setting(store: PostgreSQLEventStore, **values: Any) -> None:
    store.settings = store.settings.model_copy(update=values)


def test_identity_workload_reads_identically_after_archiving(database_url: str, tmp_path: Path) -> None:
    """Archive the oldest months of an identity workload: every stream, aggregate
    history and aggregate state is what it was; read-through off raises."""
    url = f"file://{tmp_path}/archive"
    with PostgreSQLEventStore(database_url) as store:
        reset_caches(store, tmp_path / "cache")
        scripts = generate(120, seed=13, months=4)
        for script in scripts:
            store.append_events(script.stream_id, script.events)
        snapshots = SnapshotStore(store)
        streams = {s.stream_id: s.user_id for s in scripts}
        before_streams = {sid: fingerprint(store.read_stream(sid)) for sid in streams}
        before_aggs = {uid: fingerprint(store.get_events_for_aggregate(uid)) for uid in streams.values()}
        before_state = {
            uid: snapshots.load_aggregate_with_events(UserAccount, uid, use_snapshot=False)[0].save()
            for uid in streams.values()}

        result = run_policy(store, ArchivalPolicy(name="old", strategy="time_based",
                                                  retention_days=62, target_url=url), now=NOW)
        assert result.run.dropped_partitions and result.run.deleted_events > 0
        # a third of the streams at least lost events to the archive, some kept live ones
        partial = [sid for sid in streams if stream_catalog(store, sid)]
        assert len(partial) > 20
        spanning = [sid for sid in partial
                    if store.get_stream_version(sid) > stream_catalog(store, sid)[-1].last_position]
        assert spanning, "no stream has both archived and live events"

        for sid, before in before_streams.items():
            assert fingerprint(store.read_stream(sid)) == before, sid
            # pages across the archive boundary, and backwards
            assert fingerprint(list(store.iter_stream(sid, page_size=3))) == before, sid
            assert fingerprint(store.read_stream(sid, backwards=True)) == before[::-1], sid
        for uid, before in before_aggs.items():
            assert fingerprint(store.get_events_for_aggregate(uid)) == before, uid
            aggregate, version = snapshots.load_aggregate_with_events(UserAccount, uid)
            assert aggregate.save() == before_state[uid] and version == len(before), uid
        sid = spanning[0]
        assert fingerprint(store.read_stream(sid, from_version=2, max_count=2)) == before_streams[sid][1:3]

        stats = tier_stats(store)
        assert sum(m.archived_events for m in stats) == result.run.deleted_events
        assert sum(m.live_events for m in stats) + result.run.deleted_events == sum(
            len(s.events) for s in scripts)

        setting(store, archive_read_through=False)
        uid = streams[sid]
        for read in (lambda: store.read_stream(sid), lambda: store.get_events_for_aggregate(uid),
                     lambda: snapshots.load_aggregate_with_events(UserAccount, uid)):
            with pytest.raises(ArchivedHistoryError) as err:
                read()
            assert sid in str(err.value) and result.run.run_id in str(err.value)
            assert err.value.missing.startswith("1")
        # the live part alone is still readable when it is all that is asked for
        live_from = stream_catalog(store, sid)[-1].last_position + 1
        live = store.read_stream(sid, from_version=live_from)
        assert fingerprint(live) == before_streams[sid][live_from - 1:]


@pytest.mark.parametrize("kind", ["file", "s3", "gs", "az"])
def test_read_through_on_every_target_and_a_target_killed_mid_read(
    kind: str, database_url: str, emulators: Emulators, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = target_url_for(kind, emulators, tmp_path)
    with PostgreSQLEventStore(database_url) as store:
        reset_caches(store, tmp_path / "cache")
        populate(store, [3, 2], streams=2, per_stream=4, prefix="old")
        # one stream with events in an archived month and in this month
        populate(store, [2], streams=1, per_stream=3, prefix="span")
        sid = "span-2-0"
        store.append_events(sid, [EventRecord(aggregate_id=sid, aggregate_type="User",
                                              event_type="ProfileUpdated", event_data={"n": 99})])
        before = fingerprint(store.read_stream(sid))
        old = fingerprint(store.read_stream("old-3-1"))
        run_policy(store, ArchivalPolicy(name="old", strategy="time_based", retention_days=45,
                                         target_url=url, segment_size=2), now=NOW)
        # its archived positions 1-3 are in two segments
        assert [(e.first_position, e.last_position) for e in stream_catalog(store, sid)] == [
            (1, 2), (3, 3)]
        assert fingerprint(store.read_stream(sid)) == before
        assert fingerprint(store.read_stream("old-3-1")) == old

        # the target dies once the first segment is read (its emulator process
        # stopped, or the folder moved): a clear error, never a partial history
        reset_caches(store, tmp_path / "cache-2")
        fetched: list[str] = []
        fetch = readthrough.fetch_segment_lines

        def fetch_then_kill(*args: Any) -> Any:
            lines = fetch(*args)
            if not fetched:
                if kind == "file":
                    (tmp_path / "archive").rename(tmp_path / "moved")
                else:
                    emulators.by_target[kind].stop()
            fetched.append(args[2])
            return lines

        monkeypatch.setattr(readthrough, "fetch_segment_lines", fetch_then_kill)
        try:
            with pytest.raises(ArchivedHistoryError) as err:
                store.read_stream(sid)
            assert len(fetched) == 1
            assert "positions 3 " in str(err.value) and "cannot be read" in str(err.value)
        finally:
            if kind != "file":
                emulators.ensure(kind)


def test_snapshot_guard_leaves_no_affected_aggregate_without_a_snapshot(
    database_url: str, tmp_path: Path
) -> None:
    url = f"file://{tmp_path}/archive"
    with PostgreSQLEventStore(database_url) as store:
        reset_caches(store, tmp_path / "cache")
        scripts = generate(80, seed=21, months=4)
        for script in scripts:
            store.append_events(script.stream_id, script.events)
        snapshots = SnapshotStore(store)
        before = {s.user_id: snapshots.load_aggregate_with_events(UserAccount, s.user_id)[0].save()
                  for s in scripts}
        result = run_policy(store, ArchivalPolicy(name="old", strategy="time_based",
                                                  retention_days=62, target_url=url),
                            now=NOW, snapshot_classes=[UserAccount])
        assert result.run.deleted_events > 0
        affected = []
        for script in scripts:
            entries = stream_catalog(store, script.stream_id)
            if entries and store.get_stream_version(script.stream_id) > entries[-1].last_position:
                affected.append((script.user_id, entries[-1].last_position))
        assert len(affected) >= 3
        for user_id, archived_to in affected:
            latest = snapshots.latest(UserAccount, user_id)
            assert latest is not None and latest.aggregate_version >= archived_to, user_id
        # so the common load never touches the archive: it works with read-through off
        setting(store, archive_read_through=False)
        for user_id, _ in affected:
            assert snapshots.load_aggregate_with_events(UserAccount, user_id)[0].save() == before[user_id]


def evstore_json(database_url: str, *args: str) -> Any:
    proc = subprocess.run([sys.executable, "-m", "evstore.cli", *args, "--json"],
                          env={**os.environ, "DATABASE_URL": database_url}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_operator_views_catalog_and_stats(database_url: str, tmp_path: Path) -> None:
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [3, 2], streams=2, per_stream=4, prefix="old")
        populate(store, [0], streams=2, per_stream=3, prefix="new")
        result = run_policy(store, ArchivalPolicy(name="old", strategy="time_based",
                                                  retention_days=45, target_url=f"file://{tmp_path}/a"),
                            now=NOW)
    shown = evstore_json(database_url, "archive", "catalog", "old-3-1")
    assert shown["version"] == 4
    [entry] = shown["archived"]
    assert (entry["first_position"], entry["last_position"], entry["run_id"]) == (1, 4, result.run.run_id)
    months = {m["month"]: m for m in evstore_json(database_url, "stats")["months"]}
    assert months[f"{month_start(3):%Y-%m}"]["archived_events"] == 8
    assert months[f"{month_start(3):%Y-%m}"]["live_events"] == 0
    assert months[f"{month_start(0):%Y-%m}"]["live_events"] == 6
    assert sum(m["archived_bytes"] for m in months.values()) > 0


def test_backfill_catalogs_a_run_made_before_the_catalog(database_url: str, tmp_path: Path) -> None:
    with PostgreSQLEventStore(database_url) as store:
        reset_caches(store, tmp_path / "cache")
        populate(store, [3, 2], streams=3, per_stream=5, prefix="old")
        before = fingerprint(store.read_stream("old-2-1"))
        run_policy(store, ArchivalPolicy(name="old", strategy="time_based", retention_days=45,
                                         target_url=f"file://{tmp_path}/a"), now=NOW)
        cataloged = {sid: [(e.first_position, e.last_position, e.event_count, e.run_id, e.segment_no)
                           for e in stream_catalog(store, sid)]
                     for sid in (f"old-{m}-{s}" for m in (3, 2) for s in range(3))}
        with store.connection() as conn:  # as a run completed before migration 0009 left it
            conn.execute(f"DELETE FROM {store.table('archive_catalog')}")
        readthrough.forget_empty()
        with pytest.raises(ArchivedHistoryError):
            store.read_stream("old-2-1")
        assert list(backfill_catalog(store).values()) == [6]
        assert backfill_catalog(store) == {}  # once
        for sid, entries in cataloged.items():
            assert [(e.first_position, e.last_position, e.event_count, e.run_id, e.segment_no)
                    for e in stream_catalog(store, sid)] == entries
        assert fingerprint(store.read_stream("old-2-1")) == before


def test_replay_reader_over_archived_months(database_url: str, tmp_path: Path) -> None:
    """A REPLAY (and a BATCH) reader with include_archived gets every event of the
    workload once, in the global order; without it, only the live ones."""
    from evstore.core.reader.reader import EventStreamReader
    from evstore.core.reader.streams import StreamConfig, StreamReadMode

    with PostgreSQLEventStore(database_url) as store:
        reset_caches(store, tmp_path / "cache")
        for script in generate(60, seed=3, months=4):
            store.append_events(script.stream_id, script.events)
        order = [e.event_id for e in store.iter_all()]
        result = run_policy(store, ArchivalPolicy(name="old", strategy="time_based",
                                                  retention_days=62, target_url=f"file://{tmp_path}/a"),
                            now=NOW)
        assert 0 < result.run.deleted_events < len(order)
        for mode in (StreamReadMode.REPLAY, StreamReadMode.BATCH):
            got: list[Any] = []
            EventStreamReader(store, StreamConfig(f"r-{mode.value}", mode=mode, batch_size=37,
                                                  include_archived=True)).run(got.append)
            assert [e.event_id for e in got] == order, mode
        live: list[Any] = []
        EventStreamReader(store, StreamConfig("r-live", mode=StreamReadMode.REPLAY)).run(live.append)
        assert len(live) == len(order) - result.run.deleted_events
        setting(store, archive_read_through=False)
        with pytest.raises(ArchivedHistoryError):
            EventStreamReader(store, StreamConfig("r-off", mode=StreamReadMode.REPLAY,
                                                  include_archived=True)).run(lambda e: None)


def test_a_backwards_read_right_after_another_process_archived_is_complete(
    database_url: str, tmp_path: Path
) -> None:
    """This process last saw an empty catalog (believed for a moment); another process
    then archives a stream's older events. A backwards read (whose live rows are
    contiguous, the archived ones below them) must still return the whole history."""
    with PostgreSQLEventStore(database_url) as store:
        reset_caches(store, tmp_path / "cache")
        populate(store, [3], streams=1, per_stream=4, prefix="span")
        stream = "span-3-0"
        store.append_events(stream, [EventRecord(
            aggregate_id=stream, aggregate_type="User", event_type="ProfileUpdated",
            event_data={"n": 100 + i}) for i in range(3)], expected_version=4)
        before = fingerprint(store.read_stream(stream, backwards=True))
        assert len(before) == 7  # and the catalog is now believed empty here
        code = (
            "import sys\n"
            "from datetime import datetime\n"
            "from evstore import PostgreSQLEventStore\n"
            "from evstore.core.archive import ArchivalPolicy, run_policy\n"
            "with PostgreSQLEventStore(sys.argv[1]) as s:\n"
            "    r = run_policy(s, ArchivalPolicy(name='old', strategy='time_based',\n"
            "                   retention_days=45, target_url=sys.argv[2]),\n"
            "                   now=datetime.fromisoformat(sys.argv[3]))\n"
            "    print(r.run.deleted_events)\n")
        proc = subprocess.run([sys.executable, "-c", code, database_url, f"file://{tmp_path}/a",
                               NOW.isoformat()], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["4"]
        assert store.get_stream_version(stream) == 7
        assert fingerprint(store.read_stream(stream, backwards=True)) == before
        assert fingerprint(store.read_stream(stream, backwards=True, max_count=6)) == before[:6]
        assert fingerprint(store.read_stream(stream)) == before[::-1]
