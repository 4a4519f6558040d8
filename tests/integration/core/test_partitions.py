"""Monthly partitions: created ahead, on demand for any month, and again after a drop."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from evstore import PostgreSQLEventStore

from .helpers import counts, ev, raw


def _months(store: Any) -> dict[str, Any]:
    return {p.month: p for p in store.list_partitions(exact=True)}


def test_partitions_on_demand_far_past_and_future(store: Any, pg_url: str) -> None:
    # Given a store initialised today (partitions for this month and a few ahead)
    assert "2019-03" not in _months(store) and "2031-07" not in _months(store)
    # When events dated March 2019 and July 2031 are appended, some in one batch
    past = [ev("1", "UserImported", {"i": i}, created_at=datetime(2019, 3, 15, 12, tzinfo=UTC))
            for i in range(3)]
    future = ev("1", "UserScheduled", created_at=datetime(2031, 7, 1, tzinfo=UTC))
    store.append_events("User-1", past)
    store.append_events("User-1", [future], expected_version=3)
    # Then both months got a partition, listed with exact counts and a size
    months = _months(store)
    assert months["2019-03"].row_count == 3 and months["2031-07"].row_count == 1
    assert months["2019-03"].name == "events_y2019m03"
    assert months["2019-03"].range_start == datetime(2019, 3, 1, tzinfo=UTC)
    assert months["2019-03"].range_end == datetime(2019, 4, 1, tzinfo=UTC)
    assert all(p.total_bytes > 0 for p in months.values())
    # And the events read back in stream order with their own timestamps
    events = store.read_stream("User-1")
    assert [e.created_at for e in events] == [e.created_at for e in [*past, future]]
    with raw(pg_url) as conn:
        where = conn.execute(
            "SELECT tableoid::regclass::text FROM events.events WHERE event_id = %s",
            [future.event_id],
        ).fetchone()
    assert where == ("events.events_y2031m07",)


def test_month_boundaries_follow_utc(store: Any) -> None:
    plus_two = timezone(timedelta(hours=2))
    cases = {
        "2020-01": datetime(2020, 1, 31, 23, 59, 59, 999999, tzinfo=UTC),
        "2020-02": datetime(2020, 2, 1, 0, 0, tzinfo=UTC),
        # 1 March 01:00 at UTC+2 is still February in UTC
        "2020-02 ": datetime(2020, 3, 1, 1, 0, tzinfo=plus_two),
    }
    for i, when in enumerate(cases.values()):
        store.append_events(f"User-{i}", [ev(str(i), created_at=when)])
    months = _months(store)
    assert months["2020-01"].row_count == 1 and months["2020-02"].row_count == 2
    assert "2020-03" not in months
    assert store.read_stream("User-2")[0].created_at == cases["2020-02 "]


def test_append_after_a_partition_was_dropped(store: Any, pg_url: str) -> None:
    # Given a store that has written (and cached) a partition for May 2022
    may = datetime(2022, 5, 10, tzinfo=UTC)
    store.append_events("User-1", [ev("1", created_at=may)])
    # When the partition is dropped behind its back (as archival does)
    with raw(pg_url) as conn:
        conn.execute("DROP TABLE events.events_y2022m05")
    assert "2022-05" not in _months(store)
    # Then appends into that month still work, on both write paths
    store.append_events("User-2", [ev("2", created_at=may)])
    with raw(pg_url) as conn:
        conn.execute("DROP TABLE events.events_y2022m05")
    big = [ev("3", "UserImported", {"i": i}, created_at=may) for i in range(100)]
    store.append_events("User-3", big)
    assert _months(store)["2022-05"].row_count == 100
    assert len(store.read_stream("User-3")) == 100


def test_create_partitions_ahead(store: Any) -> None:
    now = datetime(2030, 11, 5, tzinfo=UTC)
    created = store.create_partitions_ahead(3, now=now)
    assert created == [date(2030, 11, 1), date(2030, 12, 1), date(2031, 1, 1), date(2031, 2, 1)]
    assert store.create_partitions_ahead(3, now=now) == []
    assert {"2030-11", "2030-12", "2031-01", "2031-02"} <= set(_months(store))


def test_many_stores_create_the_same_new_month_at_once(pg_url: str) -> None:
    # Given 6 stores (6 pools, 6 partition caches) that all need a new month now
    stores = [PostgreSQLEventStore(pg_url) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    when = datetime(2017, 8, 20, tzinfo=UTC)

    def write(i: int) -> None:
        barrier.wait()
        stores[i].append_events(f"User-{i}", [ev(str(i), created_at=when)])

    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            for f in [pool.submit(write, i) for i in range(len(stores))]:
                f.result(timeout=60)
        # Then one partition holds all their events
        assert _months(stores[0])["2017-08"].row_count == len(stores)
        assert counts(pg_url)["events"] == len(stores)
    finally:
        for s in stores:
            s.close()


def test_list_partitions_estimates_without_exact(store: Any, pg_url: str) -> None:
    # Without exact=True the count is the statistics' estimate: wait until it arrives
    store.append_events("User-1", [ev("1", created_at=datetime(2018, 6, 1, tzinfo=UTC))])
    deadline = time.monotonic() + 30
    while True:
        with raw(pg_url) as conn:
            conn.execute("ANALYZE events.events_y2018m06")
        estimated = {p.month: p for p in store.list_partitions()}
        if estimated["2018-06"].row_count == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert estimated["2018-06"].row_count == 1
    assert estimated["2018-06"].total_bytes > 0
