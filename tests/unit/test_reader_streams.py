"""Pure parts of stream readers: the shard of a stream, and StreamConfig validation.

The SQL twin of ``shard_of`` (the ``lag`` query of sql/reader.sql) is checked
against it in tests/integration/reader/test_groups.py.
"""

from __future__ import annotations

import re

import pytest
from evstore.core.errors import ConfigurationError
from evstore.core.reader.streams import StreamConfig, StreamReadMode, shard_of


def test_shard_of_is_stable_across_releases() -> None:
    # md5(stream_id), first 32 bits, modulo the shard count: saved checkpoints depend on it
    assert [shard_of("User-1", n) for n in (16, 4, 4096)] == [5, 1, 1861]
    assert [shard_of("Order-42", n) for n in (16, 4, 4096)] == [1, 1, 3057]
    assert [shard_of("", n) for n in (16, 4, 4096)] == [9, 1, 3289]
    assert [shard_of("é-stream", n) for n in (16, 4, 4096)] == [10, 2, 2762]


@pytest.mark.parametrize("shards", [1, 2, 3, 16, 4096])
def test_shard_of_is_within_range(shards: int) -> None:
    found = {shard_of(f"Stream-{i}", shards) for i in range(2000)}
    assert found <= set(range(shards))
    if shards <= 16:  # 2000 streams reach every one of a few shards
        assert found == set(range(shards))


def test_one_shard_is_shard_zero() -> None:
    assert {shard_of(f"Stream-{i}", 1) for i in range(100)} == {0}


def test_stream_config_defaults() -> None:
    cfg = StreamConfig("proj")
    assert cfg.shards == 16 and cfg.shard_count == 1  # no group: one shard
    assert StreamConfig("proj", consumer_group="g").shard_count == 16
    assert StreamConfig("proj", consumer_group="g", shards=4).shard_count == 4
    assert cfg.mode is StreamReadMode.CATCH_UP
    assert cfg.capacity == 2 * cfg.batch_size
    assert cfg.heartbeat_every == pytest.approx(cfg.lease_ttl / 3)


def test_mode_may_be_given_by_value() -> None:
    assert StreamConfig("proj", mode="batch").mode is StreamReadMode.BATCH  # type: ignore[arg-type]


def test_partitions_is_a_deprecated_alias_of_shards() -> None:
    with pytest.warns(DeprecationWarning, match=r"partitions=.*deprecated: use shards="):
        cfg = StreamConfig("proj", consumer_group="g", partitions=8)
    assert cfg.shards == 8 and cfg.shard_count == 8
    assert cfg == StreamConfig("proj", consumer_group="g", shards=8)
    with pytest.warns(DeprecationWarning):
        assert StreamConfig("proj", shards=8, partitions=8).shards == 8


def test_partitions_and_a_different_shards_are_refused() -> None:
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigurationError, match="not both"):
        StreamConfig("proj", shards=4, partitions=8)


def test_partitions_alias_is_validated_like_shards() -> None:
    with pytest.warns(DeprecationWarning), pytest.raises(
            ConfigurationError, match=r"shards must be 1\.\.4096 \(got 0\)"):
        StreamConfig("proj", partitions=0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"checkpoint_name": "bad name"}, "checkpoint_name 'bad name' must be 1-100 letters"),
    ({"checkpoint_name": ""}, "checkpoint_name '' must be 1-100"),
    ({"consumer_group": "a/b"}, "consumer_group 'a/b' must be 1-100"),
    ({"event_types": "Ev"}, "event_types must be a non-empty list"),
    ({"aggregate_types": []}, "aggregate_types must be a non-empty list"),
    ({"batch_size": 0}, r"batch_size must be 1\.\.100000 \(got 0\)"),
    ({"concurrency": 257}, r"concurrency must be 1\.\.256 \(got 257\)"),
    ({"batch_size": 10, "queue_size": 9}, r"queue_size \(9\) must be at least batch_size \(10\)"),
    ({"shards": 0}, r"shards must be 1\.\.4096 \(got 0\)"),
    ({"shards": 4097}, r"shards must be 1\.\.4096 \(got 4097\)"),
    ({"lease_ttl": 0.4}, r"lease_ttl must be at least 0\.5 s"),
    ({"lease_ttl": 3, "heartbeat_interval": 3}, "heartbeat_interval must be > 0 and below lease_ttl"),
    ({"poll_interval": 0}, r"poll_interval must be > 0 \(got 0\)"),
])
def test_stream_config_refuses_bad_settings(kwargs: dict[str, object], message: str) -> None:
    kwargs = {"checkpoint_name": "proj", **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        StreamConfig(**kwargs)  # type: ignore[arg-type]


def test_type_filters_become_tuples() -> None:
    cfg = StreamConfig("proj", event_types=["A", "B"], aggregate_types=("User",))  # type: ignore[arg-type]
    assert cfg.event_types == ("A", "B") and cfg.aggregate_types == ("User",)


@pytest.mark.parametrize("field", ["checkpoint_name", "consumer_group"])
@pytest.mark.parametrize("value", ["proj\n", "proj\r\n", "\nproj"])
def test_names_with_a_line_break_are_refused(field: str, value: str) -> None:
    # "$" in a pattern also matches before a final newline: the whole name must match
    kwargs = {"checkpoint_name": "proj", field: value}
    with pytest.raises(ConfigurationError, match=re.escape(f"{field} {value!r} must be 1-100")):
        StreamConfig(**kwargs)  # type: ignore[arg-type]


def test_a_name_of_100_characters_is_accepted_and_101_refused() -> None:
    assert StreamConfig("a" * 100, consumer_group="g" * 100).checkpoint_name == "a" * 100
    with pytest.raises(ConfigurationError, match="must be 1-100"):
        StreamConfig("a" * 101)
