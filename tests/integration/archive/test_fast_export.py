"""The fast export (COPY streams the segment's lines) against the slow path.

Awkward values (quotes, backslashes, control characters, non-ASCII, a tab and a
newline in names, a compressed payload) must read back, parsed as every reader
parses a segment, as the very dicts the slow path builds from the rows; a
changed row must stop the segment.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from evstore.core.archive import ArchivalPolicy, list_segments, plan_run
from evstore.core.archive.fastexport import collect_segment
from evstore.core.archive.segments import row_to_line
from evstore.core.config import load_settings
from evstore.core.errors import ArchiveIntegrityError
from evstore.core.keys import keyring
from psycopg.rows import dict_row

from evstore import EventMetadata, EventRecord, PostgreSQLEventStore

from ..core.helpers import tamper
from .helpers import month_start

AWKWARD = ['quote " back \\ slash \\" \\\\', "tab\there\nnew\rline \b\f \x01 \x1f \x7f",
           "ünïcödé ☃ 𝄞 日本", "</script>\u2028\u2029", ""]


def _events(stream: int) -> list[EventRecord]:
    base = month_start(2) + timedelta(days=3)
    return [EventRecord(
        aggregate_id=f"agg\t\"{stream}\\ü", aggregate_type="\\N" if stream else "Type\\\"A",
        event_type="Ev\nt",
        event_data={"text": text, "big": "y" * (600 if i == 1 else 3), "n": i, "f": 0.1 * i,
                    "k\\\"ey": [None, True, 1e100]},
        metadata=EventMetadata(user_id=f"u\\{stream}", source="te\"st ☃"),
        created_at=base + timedelta(seconds=i, microseconds=i * 7))
        for i, text in enumerate(AWKWARD)]


def _slow_lines(store: PostgreSQLEventStore, run_id: str, number: int) -> list[dict[str, Any]]:
    with store.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(store.db.sql("archive", "segment_rows"),
                           {"run_id": run_id, "segment_no": number}).fetchall()
    return [row_to_line(r) for r in rows]


def _failures(store: PostgreSQLEventStore, run: Any, segments: list[Any], ring: Any) -> int:
    failed = 0
    for seg in segments:
        try:
            collect_segment(store, run, seg, ring)
        except ArchiveIntegrityError as exc:
            assert "fails its checksum" in str(exc)
            failed += 1
    return failed


def test_fast_export_writes_the_slow_paths_bytes_and_stops_at_a_changed_row(
        pg_url: str, tmp_path: Path) -> None:
    import zstandard
    from evstore.core.archive.rows import FORMAT_V2, encode_lines, parse_segment
    from evstore.core.archive.segments import FIELDS

    # Given awkward events, some compressed (payload), in two streams and segments
    settings = load_settings(database_url=pg_url, compression="zstd", compression_threshold=300)
    with PostgreSQLEventStore(pg_url, settings=settings) as store:
        store.initialize_schema()
        for s in range(3):
            store.append_events(f"str\\eam\t{s}\n☃", _events(s))
        run, _ = plan_run(store, ArchivalPolicy(
            name="fast", strategy="time_based", retention_days=0,
            target_url=f"file://{tmp_path}/a", segment_size=8))
        segments = list_segments(store, run.run_id)
        assert len(segments) == 2
        ring = keyring(store.settings)
        with_payload = 0
        for seg in segments:
            # When a segment is collected the fast way
            got = collect_segment(store, run, seg, ring)
            raw = zstandard.ZstdDecompressor().decompressobj().decompress(got.data)
            # Then its lines, parsed as every reader parses them, are exactly the slow
            # path's (format 2: COPY text rows), and its ranges match them
            lines = _slow_lines(store, run.run_id, seg.number)
            with_payload += any(line["payload"] is not None for line in lines)
            assert raw.endswith(b"\n") and raw[:1] != b"{"
            assert parse_segment(raw, FIELDS, "fast") == lines
            assert parse_segment(encode_lines(lines), FIELDS, "slow") == lines
            assert got.manifest.format == FORMAT_V2 and got.manifest.data_file.endswith(".tsv.zst")
            assert got.manifest.raw_bytes == len(raw)
            assert got.manifest.event_count == len(lines) == seg.event_count
            assert got.manifest.first_position == (
                f"{lines[0]['transaction_id']}:{lines[0]['global_position']}")
            assert got.manifest.last_position == (
                f"{lines[-1]['transaction_id']}:{lines[-1]['global_position']}")
            assert got.manifest.min_global_position == min(x["global_position"] for x in lines)
            by_stream: dict[str, int] = {}
            for text, line in zip(raw.split(b"\n")[:-1], lines, strict=True):
                by_stream[line["stream_id"]] = by_stream.get(line["stream_id"], 0) + len(text) + 1
            assert {c["stream_id"]: c["bytes"] for c in got.catalog} == by_stream
            assert sum(c["event_count"] for c in got.catalog) == len(lines)
        assert with_payload >= 1

        # When a compressed event's checksum is changed (checked the slow way, from its line)
        events = store.table("events")
        with tamper(pg_url) as conn:
            conn.execute(f"UPDATE {events} SET checksum = checksum || '0' WHERE payload IS NOT NULL")
        # Then collecting each segment that holds one fails, naming the event
        assert _failures(store, run, segments, ring) == with_payload
        with tamper(pg_url) as conn:
            conn.execute(f"UPDATE {events} SET checksum = left(checksum, -1) "
                         "WHERE payload IS NOT NULL")
        assert _failures(store, run, segments, ring) == 0
        # And so does one whose data was changed behind the store's back (one HMAC over bytes)
        with tamper(pg_url) as conn:
            conn.execute(f"UPDATE {events} SET event_data = jsonb_set(event_data, '{{n}}', '99') "
                         "WHERE event_data->>'n' = '3' AND payload IS NULL")
        assert _failures(store, run, segments, ring) == len(segments)


def _collect_both_ways(store: PostgreSQLEventStore, run: Any) -> list[tuple[Any, Any]]:
    """Each segment collected by its range and by its items (its range forgotten)."""
    ring = keyring(store.settings)
    by_range = [collect_segment(store, run, seg, ring) for seg in list_segments(store, run.run_id)]
    with store.connection() as conn:
        conn.execute(f"UPDATE {store.table('archive_segments')} SET first_tx = NULL "
                     "WHERE run_id = %s", (run.run_id,))
    segments = list_segments(store, run.run_id)
    assert all(seg.first_tx is None for seg in segments)
    by_items = [collect_segment(store, run, seg, ring) for seg in segments]
    return list(zip(by_range, by_items, strict=True))


def test_a_segment_read_by_its_range_keeps_only_the_runs_events(pg_url: str, tmp_path: Path) -> None:
    """A filtered selection leaves other events inside a segment's range in the global
    order: the range read skips them (or, where they outnumber the segment's, reads by
    the run's items), and the segment is the same either way."""
    import zstandard
    from evstore.core.archive.fastexport import _by_range
    from evstore.core.archive.rows import parse_segment
    from evstore.core.archive.segments import FIELDS

    base = month_start(2) + timedelta(days=3)
    with PostgreSQLEventStore(pg_url) as store:
        store.initialize_schema()
        # dense: Kept and Other alternate; sparse: 12 Kept among 1,300 Other
        for i in range(120):
            store.append_events(f"dense-{i % 7}", [EventRecord(
                aggregate_id=f"dense-{i % 7}", aggregate_type="User",
                event_type="Kept" if i % 2 else "Other", event_data={"i": i},
                created_at=base + timedelta(seconds=i))])
        sparse = [EventRecord(aggregate_id="sparse", aggregate_type="User",
                              event_type="Rare" if i % 110 == 5 else "Other",
                              event_data={"i": i}, created_at=base + timedelta(hours=1, seconds=i))
                  for i in range(1320)]
        store.append_events("sparse", sparse)
        for name, types, size in (("dense", ["Kept"], 25), ("sparse", ["Rare"], 100)):
            run, _ = plan_run(store, ArchivalPolicy(
                name=name, strategy="time_based", retention_days=0, event_types=types,
                target_url=f"file://{tmp_path}/{name}", segment_size=size))
            segments = list_segments(store, run.run_id)
            ring = keyring(store.settings)
            ranged = [_by_range(store, run, seg, ring, {}) for seg in segments]
            if name == "dense":
                assert len(segments) == 3 and all(r is not None for r in ranged)
            else:
                assert len(segments) == 1 and ranged == [None]  # read by its items instead
            for got, expected in _collect_both_ways(store, run):
                assert got.data == expected.data and got.catalog == expected.catalog
                assert got.manifest.event_count == expected.manifest.event_count
                raw = zstandard.ZstdDecompressor().decompressobj().decompress(got.data)
                lines = parse_segment(raw, FIELDS, name)
                assert {line["event_type"] for line in lines} == set(types)
            assert sum(seg.event_count for seg in segments) == (60 if name == "dense" else 12)


def test_an_event_restored_into_a_planned_range_is_not_exported_with_it(
        pg_url: str, tmp_path: Path) -> None:
    """An unfiltered run's segment is read by its range alone; an event that appears in
    that range after planning (as a restore of an older archive would put one back)
    makes the count differ, and the range is read again keeping the run's items."""
    import zstandard
    from evstore.core.archive.rows import parse_segment
    from evstore.core.archive.segments import FIELDS

    base = month_start(2) + timedelta(days=3)
    with PostgreSQLEventStore(pg_url) as store:
        store.initialize_schema()
        for s in range(6):
            store.append_events(f"s-{s}", [EventRecord(
                aggregate_id=f"s-{s}", aggregate_type="User", event_type="Seen",
                event_data={"i": i}, created_at=base + timedelta(minutes=s, seconds=i))
                for i in range(5)])
        run, _ = plan_run(store, ArchivalPolicy(name="all", strategy="time_based",
                                                retention_days=0, target_url=f"file://{tmp_path}/a"))
        [seg] = list_segments(store, run.run_id)
        assert seg.event_count == 30 and seg.first_tx < seg.last_tx
        store.append_events("intruder", [EventRecord(
            aggregate_id="intruder", aggregate_type="User", event_type="Seen", event_data={},
            created_at=base + timedelta(minutes=2))])
        with tamper(pg_url) as conn:  # moved inside the range: the first transaction, later
            conn.execute(f"UPDATE {store.table('events')} SET transaction_id = %s::text::xid8, "
                         "global_position = global_position + 1000000 "
                         "WHERE stream_id = 'intruder'", (seg.first_tx,))
        got = collect_segment(store, run, seg, keyring(store.settings))
        lines = parse_segment(zstandard.ZstdDecompressor().decompressobj().decompress(got.data),
                              FIELDS, "segment")
        assert len(lines) == got.manifest.event_count == 30
        assert "intruder" not in {line["stream_id"] for line in lines}
        assert "intruder" not in {row["stream_id"] for row in got.catalog}
