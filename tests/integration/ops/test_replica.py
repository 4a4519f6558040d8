"""Reads of the global order from a real hot standby (DATABASE_READ_URL).

A checkpointed reader on the standby never skips or repeats an event while
writers hammer the primary; a standby whose replay is paused is reported as
lag (the page is not at_end, /metrics shows the lag), never served as the head.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from evstore.core.config import load_settings

from evstore import EventRecord, PostgreSQLEventStore

from .standby import StandbyPair, available


@pytest.fixture(scope="module")
def pair() -> Iterator[StandbyPair]:
    why = available()
    if why is not None:
        pytest.fail(f"cannot start a primary and a hot standby: {why}")
    p = StandbyPair().start()
    try:
        with PostgreSQLEventStore(p.primary_url) as store:
            store.initialize_schema()
        p.wait_caught_up()
        yield p
    finally:
        p.stop()


def _store(pair: StandbyPair, **overrides: object) -> PostgreSQLEventStore:
    return PostgreSQLEventStore(settings=load_settings(
        database_url=pair.primary_url, database_read_url=pair.standby_url, **overrides))


def _writer(url: str, stop: threading.Event, seed: int, errors: list[BaseException]) -> None:
    rnd = random.Random(seed)
    try:
        with PostgreSQLEventStore(url) as store:
            while not stop.is_set():
                stream = f"Acct-{seed}-{rnd.randrange(40)}"
                n = rnd.choice((1, 1, 2, 5))
                version = store.get_stream_version(stream)
                store.append_events(stream, [
                    EventRecord(stream, "Acct", "Moved", {"i": i}, aggregate_version=version + i + 1)
                    for i in range(n)])
                if rnd.random() < 0.05:  # now and then a slow transaction holds the horizon
                    with psycopg.connect(url, autocommit=False) as conn:
                        conn.execute("SELECT pg_current_xact_id(), pg_sleep(0.2)")
    except BaseException as exc:  # pragma: no cover - reported by the test
        errors.append(exc)


def test_checkpointed_reader_on_the_standby_never_skips_or_repeats(pair: StandbyPair) -> None:
    stop, errors = threading.Event(), []
    writers = [threading.Thread(target=_writer, args=(pair.primary_url, stop, s, errors))
               for s in range(4)]
    for w in writers:
        w.start()
    seen: list[tuple[int, int, uuid.UUID]] = []
    sources: set[str] = set()
    checkpoint = None  # kept as text, as a reader saves it; the store reopened every 20 pages
    pages: list[tuple[str | None, str, bool, int]] = []  # (after, checkpoint, at_end, events)
    started = time.monotonic()
    try:
        while time.monotonic() - started < 6:
            with _store(pair) as store:
                for _ in range(20):
                    before = checkpoint
                    page = store.read_all(after=checkpoint, limit=50)
                    pages.append((before, str(page.checkpoint), page.at_end, len(page.events)))
                    sources.add(page.source)
                    seen.extend((e.transaction_id, e.global_position, e.event_id) for e in page.events)
                    checkpoint = str(page.checkpoint)
    finally:
        stop.set()
        for w in writers:
            w.join(timeout=30)
    assert not errors, errors
    assert not any(w.is_alive() for w in writers), "a writer did not stop"
    pair.wait_caught_up()
    with _store(pair) as store:
        while True:
            page = store.read_all(after=checkpoint, limit=500)
            seen.extend((e.transaction_id, e.global_position, e.event_id) for e in page.events)
            checkpoint = str(page.checkpoint)
            if page.at_end and not page.events:
                break
    with psycopg.connect(pair.primary_url) as conn:
        everything = {r[0] for r in conn.execute("SELECT event_id FROM events.events")}
    ids = [s[2] for s in seen]
    assert sources == {"replica"}
    assert len(everything) > 200  # the writers did write while the reader read
    assert len(ids) == len(set(ids)), "an event was read twice"
    if set(ids) != everything:  # which, and the page that went past it
        with psycopg.connect(pair.primary_url) as conn:
            missing = conn.execute(
                "SELECT transaction_id::text, global_position, stored_at FROM events.events "
                "WHERE event_id = ANY(%s)", [list(everything - set(ids))]).fetchall()
        from evstore.core.store.persistence import Position

        passed = [pg for pg in pages for m in missing
                  if pg[0] is not None and Position.parse(pg[0]) < Position(int(m[0]), m[1])
                  <= Position.parse(pg[1])]
        raise AssertionError(f"skipped: {missing}; pages that went past them: {passed[:3]}")
    positions = [(s[0], s[1]) for s in seen]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)


def test_a_lagging_standby_is_reported_as_lag_not_as_the_head(pair: StandbyPair) -> None:
    from evstore.http.collector import StoreCollector

    with _store(pair, replica_max_lag_seconds=0.5) as store, \
            psycopg.connect(pair.standby_url, autocommit=True) as standby:
        pair.wait_caught_up()
        head = store.read_all(limit=10_000)
        while not head.at_end:
            head = store.read_all(after=head.checkpoint, limit=10_000)
        assert head.lag_bytes == 0
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            stream = f"Late-{uuid.uuid4().hex[:6]}"
            store.append_events(stream, [EventRecord(stream, "Late", "Written", {"n": i},
                                                     aggregate_version=i + 1) for i in range(3)])
            # each read waits up to the lag bound for the standby; read until it is over it
            deadline = time.monotonic() + 15
            page = store.read_all(after=head.checkpoint, limit=100)
            while page.lag_seconds <= 0.5 and time.monotonic() < deadline:
                page = store.read_all(after=head.checkpoint, limit=100)
            # the standby has not the new events: it says it is behind instead of "at the head"
            assert page.events == []
            assert page.source == "replica" and not page.at_end
            assert page.lag_bytes > 0 and page.lag_seconds > 0.5
            collector = StoreCollector(pair.primary_url, store.settings, read_url=pair.standby_url)
            try:
                samples = {s.name: s.value for m in collector.collect() for s in m.samples}
            finally:
                collector.close()
            assert samples["evstore_replica_in_recovery"] == 1
            assert samples["evstore_replica_lag_bytes"] > 0
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
        pair.wait_caught_up()
        page = store.read_all(after=head.checkpoint, limit=100)
        assert [e.stream_id for e in page.events] == [stream] * 3
        assert page.at_end and page.lag_bytes == 0


def test_a_replay_on_workers_reads_its_batches_on_the_standby(
        pair: StandbyPair, redis_url: str, tmp_path: Path) -> None:
    from evstore.workers.broker import make_broker
    from evstore.workers.pool import WorkerPool
    from evstore.workers.replay import EventReplayService, ReplayConfig

    import tests.integration.workers.handlers  # noqa: F401  (the handlers, here too)
    from tests.integration.workers.conftest import HANDLERS, ROOT, TEST_JOB_ENV
    from tests.integration.workers.handlers import EFFECTS_DDL

    env = {**TEST_JOB_ENV, "DATABASE_READ_URL": pair.standby_url, "PYTHONPATH": str(ROOT),
           "EVSTORE_DRAMATIQ_NAMESPACE": os.environ["EVSTORE_DRAMATIQ_NAMESPACE"]}
    with _store(pair) as store:
        with store.connection() as conn:
            conn.execute(EFFECTS_DDL)
            (total,) = conn.execute("SELECT count(*) FROM events.events").fetchone()
        pool = WorkerPool(pair.primary_url, redis_url, processes=1, threads=2, handler_modules=[HANDLERS],
                          env=env, log_path=tmp_path / "workers.log", cwd=ROOT).start()
        broker = make_broker(redis_url)
        try:
            service = EventReplayService(store, broker)
            result = service.replay_events(ReplayConfig(handler_names=["record"], batch_size=2000),
                                           wait=True, timeout=180)
            assert result.status == "succeeded", service.engine.detail(result.job_id)
            batches = service.engine.repo.batches(result.job_id)
            # every batch read its events on the standby...
            assert {b.details.get("source") for b in batches} == {"replica"}
            # ...and every event took effect once, on the primary
            with store.connection() as conn:
                rows, distinct = conn.execute(
                    "SELECT count(*), count(DISTINCT event_id) FROM public.replay_effects").fetchone()
            assert rows == distinct == total == result.successful_events

            # A standby that has not replayed what the plan saw: the batch reads on the primary.
            with psycopg.connect(pair.standby_url, autocommit=True) as standby:
                stream = f"Paused-{uuid.uuid4().hex[:6]}"
                standby.execute("SELECT pg_wal_replay_pause()")
                try:
                    store.append_events(stream, [EventRecord(stream, "Paused", "Written", {"n": 1},
                                                             aggregate_version=1)])
                    late = service.replay_events(ReplayConfig(handler_names=["record"],
                                                              aggregate_types=["Paused"]),
                                                 wait=True, timeout=60)
                finally:
                    standby.execute("SELECT pg_wal_replay_resume()")
            assert late.status == "succeeded" and late.successful_events == 1
            assert [b.details.get("source") for b in service.engine.repo.batches(late.job_id)] == [
                "primary"]
        finally:
            broker.client.close()
            pool.stop(timeout=20)
