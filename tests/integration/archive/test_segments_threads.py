"""Segments are built and read in parallel threads (run_policy, dramatiq worker threads)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from evstore.core.archive.segments import build_segment, read_segment


def line(i: int, blob: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    from evstore.core.serialization import checksum, dumps, iso

    created = datetime(2024, 1, 1, tzinfo=UTC)
    data = dumps({"i": i, "blob": blob})
    digest = checksum(event_id=f"00000000-0000-0000-0000-{i:012d}", stream_id="s",
                      stream_position=i, aggregate_id="a", aggregate_type="A", event_type="E",
                      event_version=1, created_at=created, data_json=data, metadata_json="{}")
    return {"event_id": f"00000000-0000-0000-0000-{i:012d}", "aggregate_id": "a",
            "aggregate_type": "A", "event_type": "E", "event_version": 1, "aggregate_version": i,
            "stream_id": "s", "stream_position": i, "global_position": i, "transaction_id": 7,
            "event_data": data, "payload": None, "metadata": "{}",
            "created_at": iso(created), "stored_at": iso(created),
            "status": "active", "compression": "none", "encryption": "none", "checksum": digest,
            "original_size": len(data), "stored_size": len(data)}


def test_segments_round_trip_from_eight_threads_at_once() -> None:
    blobs = [os.urandom(2000).hex() for _ in range(8)]

    def round_trip(n: int) -> int:
        ok = 0
        for _ in range(20):
            lines = [line(i, blobs[n]) for i in range(1, 40)]
            data, manifest = build_segment("run", "p", n, lines, False)
            ok += list(read_segment(data, manifest, "mem")) == lines
        return ok

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(round_trip, range(8))) == [20] * 8
