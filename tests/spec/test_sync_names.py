"""The spec's names and argument shapes accepted by the synchronous API (aliases, not copies)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from psycopg_pool import ConnectionPool

from evstore import (
    ArchivalPolicy,
    ArchivalStrategy,
    ConfigurationError,
    EventMetadata,
    EventRecord,
    EventSnapshot,
    EventStreamReader,
    PostgreSQLEventStore,
    SnapshotConfig,
    SnapshotStore,
    SnapshotStrategy,
    StreamConfig,
    StreamReadMode,
)

from .test_snapshots import User


def test_store_around_a_plain_pool_with_uuid_ids(connection_pool: ConnectionPool) -> None:
    store = PostgreSQLEventStore(connection_pool, schema_name="events")
    store.initialize_schema()
    user_id = uuid4()
    store.append_events(f"User-{user_id}", [EventRecord(
        aggregate_id=user_id, aggregate_type="User", event_type="UserCreated",
        event_data={"email": "a@example.com"}, aggregate_version=1,
        metadata=EventMetadata(user_id=user_id))])
    (event,) = store.get_events_for_aggregate(user_id, "User")
    assert event.aggregate_id == str(user_id) and event.metadata.user_id == str(user_id)
    page = store.read_all()  # transaction ids (xid8) read as ints on the caller's connections
    assert [e.event_id for e in page.events] == [event.event_id]
    assert isinstance(page.checkpoint.transaction_id, int)
    with pytest.raises(TypeError, match="give the pool once"):
        PostgreSQLEventStore(connection_pool, pool=connection_pool)
    store.close()
    assert not connection_pool.closed  # the caller's pool stays the caller's


def test_snapshot_service_and_config_names(event_store: Any) -> None:
    store = event_store.sync
    user_id = uuid4()
    store.append_events(f"User-{user_id}", [
        EventRecord(user_id, "User", "UserCreated", {"email": "a@example.com"}, aggregate_version=1)])
    config = SnapshotConfig(strategy=SnapshotStrategy.EVENT_COUNT, event_threshold=50)
    assert config.every_n_events == 50
    service = EventSnapshot(store, config)
    assert isinstance(service, SnapshotStore) and service.config is config
    user, version = service.load_aggregate_with_events(User, user_id, "User")
    snap = service.create_snapshot(user, user_id, "User", version)
    assert snap is not None and isinstance(snap, EventSnapshot)
    assert (snap.aggregate_id, snap.aggregate_version) == (str(user_id), 1)
    with pytest.raises(ConfigurationError, match="event_threshold"):
        SnapshotConfig(every_n_events=10, event_threshold=50)


def test_archival_policy_names() -> None:
    policy = ArchivalPolicy(policy_name="gdpr_compliance", strategy=ArchivalStrategy.GDPR_BASED,
                            gdpr_retention_days=2555, anonymize_before_archive=True)
    assert (policy.name, policy.retention_days, policy.anonymize_before_archive) == (
        "gdpr_compliance", 2555, True)
    assert policy.target_url.startswith("file://") and policy.target_url.endswith("/archive")
    assert "policy_name" not in policy.to_dict()  # the configuration file keeps its own names
    with pytest.raises(ConfigurationError, match="strategy is required"):
        ArchivalPolicy(policy_name="x")
    with pytest.raises(ConfigurationError, match="not both"):
        ArchivalPolicy("a", "gdpr_based", policy_name="b", retention_days=1)


def test_stream_config_names_and_process_stream(event_store: Any) -> None:
    store = event_store.sync
    for i in range(3):
        store.append_events(f"User-{i}", [EventRecord(str(i), "User", "UserCreated", {},
                                                      aggregate_version=1)])
    seen: list[str] = []
    config = StreamConfig(consumer_group="user-analytics", read_mode=StreamReadMode.BATCH,
                          event_types=["UserCreated"], event_handler=lambda e: seen.append(e.stream_id))
    assert (config.checkpoint_name, config.mode) == ("user-analytics", StreamReadMode.BATCH)
    metrics = EventStreamReader(store, config).process_stream()
    assert sorted(seen) == ["User-0", "User-1", "User-2"]
    assert metrics.events_processed == 3 and metrics.processing_rate_per_second > 0
    with pytest.raises(ConfigurationError, match="no handler"):
        EventStreamReader(store, StreamConfig("plain", mode=StreamReadMode.BATCH)).process_stream()
    with pytest.raises(ConfigurationError, match="not both"):
        StreamConfig("x", mode=StreamReadMode.BATCH, read_mode=StreamReadMode.STREAMING)
