"""Each strategy selects what it should; a preview changes nothing; GDPR anonymizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from evstore.core.archive import (
    ArchivalPolicy,
    EventArchiver,
    cleanup_gdpr_data,
    restore_archive,
    verify_archive,
)
from evstore.core.errors import ConfigurationError
from evstore.core.store.partitions import month_of, partition_name

from evstore import PostgreSQLEventStore

from .helpers import count, month_start, partition_names, populate, raw_rows

NOW = month_start(0).replace(day=20)


def state(store: PostgreSQLEventStore, folder: Path) -> tuple[Any, ...]:
    return (raw_rows(store), partition_names(store), count(store, "archive_runs"),
            count(store, "archive_items"), sorted(folder.rglob("*")) if folder.exists() else [])


def policies(url: str) -> list[ArchivalPolicy]:
    return [
        ArchivalPolicy(name="time", strategy="time_based", retention_days=45, target_url=url),
        ArchivalPolicy(name="count", strategy="count_based", keep_events=4, target_url=url),
        ArchivalPolicy(name="size", strategy="size_based", max_bytes=0, target_url=url),
        ArchivalPolicy(name="gdpr", strategy="gdpr_based", retention_days=40, target_url=url),
    ]


def test_preview_changes_nothing_and_matches_the_run(database_url: str, tmp_path: Path) -> None:
    url = f"file://{tmp_path}/archive"
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [3, 2, 1, 0], streams=2, per_stream=6)
        before = state(store, tmp_path / "archive")
        archiver = EventArchiver(store)
        previews = {p.name: archiver.preview(p, now=NOW) for p in policies(url)}
        assert state(store, tmp_path / "archive") == before

        assert previews["time"].events == 24 and previews["time"].drops_partitions
        assert previews["time"].partitions == [partition_name(month_of(month_start(a)))
                                               for a in (3, 2)]
        assert previews["count"].events == 8 * 2  # 6 - 4 per stream, 8 streams
        assert previews["size"].events == 36  # every closed month, not this one
        assert previews["gdpr"].events == 36 and not previews["gdpr"].drops_partitions
        assert previews["gdpr"].bytes > previews["gdpr"].payload_bytes > 0

        # and a run archives exactly what its preview showed
        result = archiver.archive(policies(url)[1], now=NOW)
        assert result.events == previews["count"].events


def test_each_strategy_selects_what_it_should(database_url: str, tmp_path: Path) -> None:
    url = f"file://{tmp_path}/archive"
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [3, 2, 1, 0], streams=2, per_stream=6)
        original = raw_rows(store)
        archiver = EventArchiver(store)
        time_p, count_p, _, gdpr_p = policies(url)

        # COUNT_BASED keeps the newest 4 events of every stream
        archiver.archive(count_p, now=NOW)
        rows = raw_rows(store)
        assert {r.stream_position for r in rows} == {3, 4, 5, 6}
        assert len(rows) == 32

        # TIME_BASED takes whole months older than 45 days: 3 and 2 months ago
        result = archiver.archive(time_p, now=NOW)
        assert sorted(result.run.dropped_partitions) == sorted(
            partition_name(month_of(month_start(a))) for a in (3, 2))
        assert all(r.created_at >= month_start(1) for r in raw_rows(store))

        # SIZE_BASED drops the oldest closed months until the rest fits
        sizes = {p.name: p.total_bytes for p in store.list_partitions()}
        last_month = partition_name(month_of(month_start(1)))
        limit = sum(sizes.values()) - sizes[last_month]
        size_p = ArchivalPolicy(name="size", strategy="size_based", max_bytes=limit, target_url=url)
        assert archiver.preview(size_p, now=NOW).partitions == [last_month]
        fits = ArchivalPolicy(name="size2", strategy="size_based", max_bytes=limit + 1 + sizes[
            last_month], target_url=url)
        assert archiver.preview(fits, now=NOW).events == 0

        # GDPR_BASED archives older than 40 days, anonymized, and deletes those rows
        populate(store, [1], streams=1, per_stream=3, prefix="late")
        result = archiver.archive(gdpr_p, now=NOW)
        assert result.events == 8 + 3
        assert all(r.created_at >= month_start(0) for r in raw_rows(store))
        report = verify_archive(result.run.manifest_url)
        assert report.ok, report.problems
        restore_archive(store, result.run.manifest_url)
        back = [r for r in raw_rows(store) if r.created_at < month_start(0)]
        assert len(back) == 11
        for r in back:
            data, meta = json.loads(r.event_data), json.loads(r.metadata)
            assert data["email"] == "[redacted]" and data["nested"]["name"] == "[redacted]"
            assert meta["user_id"] == "[redacted]" and meta["source"] == "test"
        assert store.verify().ok
        assert len(original) == 48


def test_filters_make_time_based_row_by_row(database_url: str, tmp_path: Path) -> None:
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [2], streams=2, per_stream=5)
        populate(store, [2], streams=1, per_stream=5, prefix="org")
        policy = ArchivalPolicy(name="f", strategy="time_based", retention_days=30,
                                target_url=str(tmp_path / "a"), aggregate_types=["Nope", "User"])
        assert not policy.drops_partitions
        result = EventArchiver(store).archive(policy, now=NOW)
        assert result.events == 15 and result.run.dropped_partitions == []
        assert partition_name(month_of(month_start(2))) in partition_names(store)


def test_bad_policies_are_refused_with_the_reason() -> None:
    with pytest.raises(ConfigurationError, match="retention_days"):
        ArchivalPolicy(name="x", strategy="time_based", target_url="/tmp/x")
    with pytest.raises(ConfigurationError, match="unknown archival strategy"):
        ArchivalPolicy(name="x", strategy="never", target_url="/tmp/x")
    with pytest.raises(ConfigurationError, match="unsupported archive target"):
        ArchivalPolicy(name="x", strategy="count_based", keep_events=1, target_url="ftp://h/x")
    with pytest.raises(ConfigurationError, match="unknown setting"):
        ArchivalPolicy.from_dict({"name": "x", "strategy": "count_based", "keep_events": 1,
                                  "target": "/tmp/x", "retention": 3})


def test_cleanup_gdpr_data_anonymizes_one_subject(database_url: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # What is personal is declared (issue 10, docs/privacy.md), no longer guessed by key name.
    config = tmp_path / "evstore.toml"
    config.write_text('[privacy.ProfileUpdated]\nfields = ["data.email", "data.nested.name"]\n'
                      'subject = "aggregate_id"\naggregate_type = "User"\n')
    monkeypatch.setenv("EVSTORE_CONFIG", str(config))
    with PostgreSQLEventStore(database_url) as store:
        populate(store, [0], streams=3, per_stream=4)
        before = raw_rows(store)
        result = cleanup_gdpr_data(store, "user-0-1")
        assert (result.events_anonymized, result.snapshots_rewritten,
                result.archive_segments_rewritten, result.keys_destroyed) == (4, 0, 0, 0)
        after = raw_rows(store)
        changed = [a for a, b in zip(after, before, strict=True) if a != b]
        assert len(changed) == 4 and all(r.aggregate_id == "user-0-1" for r in changed)
        assert all("u1@example.com" not in r.event_data and "Ada" not in r.event_data for r in changed)
        assert store.verify().ok
        assert count(store, "event_access_log") == 1
