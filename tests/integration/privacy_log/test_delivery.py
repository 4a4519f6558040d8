"""Readers, consumer groups, aggregate (snapshot) loads and replays on real workers: one
access-log entry per access that delivered personal data, with the declared accessor and
purpose; a subject who withdrew consent for that purpose is seen redacted, others are not."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from evstore.core.privacy import consent
from evstore.core.reader.reader import EventStreamReader
from evstore.core.reader.streams import StreamConfig, StreamReadMode
from evstore.core.snapshots.aggregate import Aggregate
from evstore.core.snapshots.store import SnapshotStore
from evstore.workers.pool import wait_for
from evstore.workers.replay import ReplayConfig

from tests.integration.workers import conftest as workers

from .helpers import log_rows, open_store, order, profile

job_env, jobs_store, broker = workers.job_env, workers.jobs_store, workers.broker
service, start_workers = workers.service, workers.start_workers


def _seed(store: Any) -> None:
    store.initialize_schema()
    for user in ("a", "b", "c"):
        store.append_events(f"user-{user}", [profile(user), profile(user)])
    store.append_events("orders", [order("a")])


def _run_reader(store: Any, config: StreamConfig) -> list[Any]:
    seen: list[Any] = []
    lock = threading.Lock()

    def handler(event: Any) -> None:
        with lock:
            seen.append(event)

    EventStreamReader(store, config).run(handler)
    return seen


def test_a_reader_logs_each_delivered_page_with_its_creators_context(database_url: str) -> None:
    with open_store(database_url, flush_ms=0) as store:
        _seed(store)
        consent.withdraw(store, "b", "analytics", by="dpo")
        with store.access_context(accessor="etl", purpose="analytics"):
            seen = _run_reader(store, StreamConfig(checkpoint_name="p2", batch_size=4,
                                                   mode=StreamReadMode.BATCH))
        assert len(seen) == 7
        by_user = {(e.metadata.user_id, e.event_data.get("email")) for e in seen
                   if e.event_type != "P2OrderPlaced"}
        assert by_user == {("a", "a@example.com"), ("b", "[redacted]"), ("c", "c@example.com")}
        assert all(e.event_data["plan"] == "pro" for e in seen if e.metadata.user_id == "b"
                   and e.event_type != "P2OrderPlaced")  # undeclared fields stay
    rows = log_rows(database_url)
    assert {r["access_type"] for r in rows} == {"reader"}
    assert all(r["accessor"] == "etl" and r["purpose"] == "analytics" for r in rows)
    assert sum(len(r["event_ids"]) for r in rows) == 6        # every personal event, once
    assert len(rows) == 2                                      # pages of 4: 4 + 3 events
    assert all(r["details"]["checkpoint"] == "p2" for r in rows)


def test_consumer_group_members_log_only_what_they_deliver(database_url: str) -> None:
    with open_store(database_url, flush_ms=0) as store:
        _seed(store)
        config = StreamConfig(checkpoint_name="p2g", consumer_group="g", shards=4,
                              batch_size=100, mode=StreamReadMode.BATCH, lease_ttl=5)
        with store.access_context(accessor="group-member"):
            seen = _run_reader(store, config)
    rows = log_rows(database_url)
    assert len(seen) == 7
    assert rows and all(r["access_type"] == "reader" and r["details"]["consumer_group"] == "g"
                        for r in rows)
    logged = [e for r in rows for e in r["event_ids"]]
    assert sorted(map(str, logged)) == sorted(str(e.event_id) for e in seen
                                              if e.event_type != "P2OrderPlaced")


class Person(Aggregate):
    aggregate_type = "User"

    def apply(self, event: Any) -> None:
        self.email = event.event_data.get("email")

    def save(self) -> dict[str, Any]:
        return {"email": self.email}

    def restore(self, state: dict[str, Any]) -> None:
        self.email = state["email"]


def test_an_aggregate_load_is_one_access_with_or_without_a_snapshot(database_url: str) -> None:
    from evstore.core.privacy.declarations import PersonalData, declare

    with open_store(database_url, flush_ms=0) as store:
        _seed(store)
        snaps = SnapshotStore(store)
        with store.access_context(accessor="app", purpose="service"):
            person, version = snaps.load_aggregate_with_events(Person, "a")
        assert version == 2 and person.email == "a@example.com"
        rows = log_rows(database_url)
        assert [(r["access_type"], r["subject_id"], len(r["event_ids"])) for r in rows] == [
            ("aggregate_load", "a", 2)]
        assert rows[0]["details"]["aggregate_type"] == "User"
        snaps.create_snapshot(Person, "a")            # reads the events: one more access
        assert len(log_rows(database_url)) == 2
        # a load from the snapshot alone: logged when the aggregate type has declarations
        declare(PersonalData("P2UserState", ("data.email",), subject="aggregate_id",
                             aggregate_type="User"))
        snaps.load_aggregate_with_events(Person, "a")
        last = log_rows(database_url)[-1]
        assert (last["access_type"], last["subject_id"], last["event_ids"]) == (
            "aggregate_load", "a", [])
        assert last["details"]["snapshot_version"] == 2


@pytest.mark.slow
def test_a_replay_logs_one_entry_per_batch_and_redacts_withdrawn_subjects(
    service: Any, jobs_store: Any, start_workers: Any, broker: Any, job_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.integration.privacy_log.handlers import SEEN_DDL

    modules = f"{job_env['EVSTORE_HANDLER_MODULES']},tests.integration.privacy_log.handlers"
    monkeypatch.setenv("EVSTORE_HANDLER_MODULES", modules)
    url = job_env["DATABASE_URL"]
    with open_store(url, flush_ms=0) as store:
        _seed(store)
        with store.connection() as conn:
            conn.execute(SEEN_DDL)
        consent.withdraw(store, "c", "research", by="dpo")
    start_workers(processes=1, threads=2, EVSTORE_HANDLER_MODULES=modules,
                  EVSTORE_ACCESS_LOG_FLUSH_MS="0")
    wait_for(lambda: int(broker.client.zcard(f"{broker.namespace}:__heartbeats__")) >= 1,
             timeout=60, what="a worker polling Redis")
    with jobs_store.access_context(accessor="analyst"):
        done = service.replay_events(ReplayConfig(handler_names=["p2_seen"], batch_size=2,
                                                  purpose="research"), wait=True, timeout=120)
    assert done.status == "succeeded" and done.successful_events == 6
    with jobs_store.connection() as conn:
        seen = conn.execute("SELECT user_id, email FROM public.p2_seen ORDER BY user_id").fetchall()
    assert seen == [("a", "a@example.com")] * 2 + [("b", "b@example.com")] * 2 + [
        ("c", "[redacted]")] * 2
    rows = [r for r in log_rows(url) if r["access_type"] == "replay"]
    assert len(rows) == 3                                       # 3 batches of one stream each
    assert all(r["accessor"] == "analyst" and r["purpose"] == "research" for r in rows)
    assert sorted(r["subject_id"] for r in rows) == ["a", "b", "c"]
    assert all(r["details"]["job_id"] == done.job_id for r in rows)


def test_a_query_is_one_access_even_from_the_cache_and_applies_consent(database_url: str) -> None:
    from evstore.core.query import EventQueryService, EventSearchCriteria

    with open_store(database_url, flush_ms=0) as store:
        _seed(store)
        consent.withdraw(store, "a", "marketing", by="dpo")
        service = EventQueryService(store)
        criteria = EventSearchCriteria(event_types=["P2ProfileSet"], limit=100)
        with store.access_context(accessor="crm", purpose="marketing"):
            first, _ = service.query_events(criteria)
            again, metrics = service.query_events(criteria)          # from the cache
            none, _ = service.query_events(EventSearchCriteria(event_types=["P2OrderPlaced"]))
        assert metrics.cache_hit and len(first) == len(again) == 6 and len(none) == 1
        emails = sorted(e.event_data["email"] for e in again)
        assert emails == ["[redacted]"] * 2 + ["b@example.com"] * 2 + ["c@example.com"] * 2
        plain, _ = service.query_events(criteria)                    # no purpose: as stored
        assert sorted(e.event_data["email"] for e in plain)[0] == "a@example.com"
    rows = [r for r in log_rows(database_url) if r["access_type"] == "query"]
    assert len(rows) == 3                                             # the order query logs nothing
    assert [(r["accessor"], r["purpose"]) for r in rows[:2]] == [("crm", "marketing")] * 2


def test_the_async_api_carries_the_access_context_to_its_threads(database_url: str) -> None:
    import asyncio

    from evstore.aio import PostgreSQLEventStore as AsyncStore

    with open_store(database_url, flush_ms=0) as store:
        _seed(store)

        async def main() -> int:
            astore = AsyncStore(store)
            with store.access_context(accessor="async-app", purpose="api"):
                events = await astore.read_stream("user-a")
            return len(events)

        assert asyncio.run(main()) == 2
    (row,) = log_rows(database_url)
    assert (row["accessor"], row["purpose"], row["subject_id"]) == ("async-app", "api", "a")
