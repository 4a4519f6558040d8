"""Payload compression through the store: each codec, thresholds, recorded sizes."""

from __future__ import annotations

from typing import Any

import pytest
from evstore.core import codecs
from evstore.core.serialization import jsonb_text as dumps

from evstore import PostgreSQLEventStore, load_settings

from .helpers import ev, raw

BIG = {"bio": "I like long walks on the beach. " * 60, "tags": list(range(200))}
SMALL = {"email": "a@example.com"}


def _rows(pg_url: str) -> list[tuple[Any, ...]]:
    with raw(pg_url) as conn:
        return conn.execute(
            "SELECT compression, event_data IS NULL, payload, original_size, stored_size "
            "FROM events.events ORDER BY stream_position"
        ).fetchall()


@pytest.mark.parametrize("codec", ["none", "gzip", "lz4", "zstd"])
def test_round_trip_and_sizes(pg_url: str, codec: str) -> None:
    settings = load_settings(compression=codec, compression_threshold=256)
    with PostgreSQLEventStore(pg_url, settings=settings) as store:
        # Given one payload above the threshold and one below
        batch = [ev("1", "UserProfileUpdated", BIG), ev("1", "UserEmailChanged", SMALL)]
        store.append_events("User-1", batch)
        # When they are read back
        events = store.read_stream("User-1")
        # Then the content is exactly what was appended
        assert [e.event_data for e in events] == [BIG, SMALL]
        big_len, small_len = len(dumps(BIG).encode()), len(dumps(SMALL).encode())
        (c1, null1, payload, orig1, stored1), (c2, null2, _, orig2, stored2) = _rows(pg_url)
        if codec == "none":
            assert (c1, null1, payload, stored1) == ("none", False, None, big_len)
        else:
            # And the large one is stored compressed, with both sizes recorded
            assert (c1, null1) == (codec, True)
            assert stored1 == len(payload) < orig1 == big_len
            assert codecs.decompress(codec, bytes(payload)) == dumps(BIG).encode()
            assert events[0].compression == codec and events[0].stored_size == stored1
        # And the small one stays plain jsonb
        assert (c2, null2, orig2, stored2) == ("none", False, small_len, small_len)
        # And metrics report the sizes and the ratio
        m = store.metrics(exact=True)
        assert m.events == 2 and m.original_payload_bytes == big_len + small_len
        assert m.stored_payload_bytes == stored1 + small_len
        assert m.compressed_events == (0 if codec == "none" else 1)
        assert m.compression_ratio == pytest.approx((big_len + small_len) / (stored1 + small_len))
        assert (m.compression_ratio > 2) == (codec != "none")
        assert store.verify().ok


def test_compression_from_the_environment(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given EVENT_STORE_COMPRESSION=lz4 and a threshold of 100 bytes
    monkeypatch.setenv("EVENT_STORE_COMPRESSION", "lz4")
    monkeypatch.setenv("EVENT_STORE_COMPRESSION_THRESHOLD", "100")
    with PostgreSQLEventStore(pg_url) as store:
        assert (store.settings.compression, store.settings.compression_threshold) == ("lz4", 100)
        store.append_events("User-1", [ev("1", "UserProfileUpdated", BIG)])
    assert _rows(pg_url)[0][0] == "lz4"
    # And a store with compression off reads those events transparently
    monkeypatch.setenv("EVENT_STORE_COMPRESSION", "off")
    with PostgreSQLEventStore(pg_url) as plain:
        assert plain.settings.compression == "none"
        assert plain.read_stream("User-1")[0].event_data == BIG
        plain.append_events("User-1", [ev("1", "UserProfileUpdated", BIG)], expected_version=1)
    assert [r[0] for r in _rows(pg_url)] == ["lz4", "none"]


def test_compression_on_means_zstd_and_threshold_is_inclusive(pg_url: str) -> None:
    settings = load_settings(compression="on", compression_threshold=len(dumps(BIG).encode()))
    with PostgreSQLEventStore(pg_url, settings=settings) as store:
        assert store.settings.compression == "zstd"
        store.append_events("User-1", [ev("1", "UserProfileUpdated", BIG)])
        shorter = dict(BIG, bio=BIG["bio"][:-1])
        store.append_events("User-1", [ev("1", "UserProfileUpdated", shorter)], expected_version=1)
        assert [e.event_data for e in store.read_stream("User-1")] == [BIG, shorter]
    assert [r[0] for r in _rows(pg_url)] == ["zstd", "none"]


def test_large_compressed_batch_uses_copy_and_reads_back(pg_url: str) -> None:
    settings = load_settings(compression="gzip", compression_threshold=64)
    with PostgreSQLEventStore(pg_url, settings=settings) as store:
        batch = [ev("1", "UserProfileUpdated", dict(BIG, i=i)) for i in range(120)]
        store.append_events("User-1", batch)
        assert [e.event_data["i"] for e in store.read_stream("User-1")] == list(range(120))
        assert store.metrics(exact=True).compressed_events == 120
        assert store.verify().ok
