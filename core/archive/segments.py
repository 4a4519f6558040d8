"""The archive format: a segment is zstd-compressed JSON lines plus a manifest.

One line per event holds every column of the events table. ``event_data`` and
``metadata`` are kept as the exact JSON text PostgreSQL gave (a JSON string
inside the line), so a restore writes back the same jsonb value, byte for
byte, whatever numbers it holds; ``payload`` (a compressed event body) is
base64. The manifest names each file with its SHA-256 and size, the event
count, the position range in the global order and the time range.

A run's manifest (``run.json``) lists its segments and is written last: an
archive folder without ``run.json`` is a run that did not finish.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from .. import codecs
from ..errors import ArchiveIntegrityError
from ..serialization import checksum_of, dumps, iso

SEGMENT_FORMAT = "evstore-archive-segment/1"
RUN_FORMAT = "evstore-archive-run/1"
CODEC = "zstd"
DATA_SUFFIX = ".jsonl.zst"
MANIFEST_SUFFIX = ".manifest.json"
RUN_MANIFEST = "run.json"

# The columns of an archived line, in file order (the ``segment_rows`` query of
# sql/archive.sql selects them by these names; restore copies them back in this order).
FIELDS = (
    "event_id", "aggregate_id", "aggregate_type", "event_type", "event_version",
    "aggregate_version", "stream_id", "stream_position", "global_position", "transaction_id",
    "event_data", "payload", "metadata", "created_at", "stored_at", "status", "compression",
    "encryption", "checksum", "original_size", "stored_size",
)


def segment_name(number: int) -> str:
    return f"segment-{number:05d}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def row_to_line(row: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready dict from a ``segment_rows`` row (a dict_row), keys in FIELDS order."""
    out = {name: row[name] for name in FIELDS}
    out["event_id"] = str(out["event_id"])
    out["created_at"] = iso(out["created_at"])
    out["stored_at"] = iso(out["stored_at"])
    payload = out["payload"]
    out["payload"] = None if payload is None else base64.b64encode(bytes(payload)).decode()
    return out


def line_checksum(line: dict[str, Any]) -> str:
    """Recompute an archived event's checksum from the line alone."""
    if line["payload"] is not None:
        raw = codecs.decompress(line["compression"], base64.b64decode(line["payload"]))
        data = json.loads(raw)
    else:
        data = json.loads(line["event_data"])
    return checksum_of(line, dumps(data), dumps(json.loads(line["metadata"])))


def check_checksums(
    lines: Iterable[dict[str, Any]], problem: Callable[[dict[str, Any], str], str]
) -> None:
    """ArchiveIntegrityError(problem(line, computed)) for the first line whose
    recomputed checksum differs from its own."""
    for line in lines:
        computed = line_checksum(line)
        if computed != line["checksum"]:
            raise ArchiveIntegrityError(problem(line, computed))


M = TypeVar("M", bound="_ManifestFile")


class _ManifestFile:
    """JSON (de)serialisation shared by the segment and run manifests."""

    FORMAT: ClassVar[str]
    WHAT: ClassVar[str]

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str).encode()  # type: ignore[call-overload]

    @classmethod
    def from_bytes(cls: type[M], data: bytes, where: str) -> M:
        try:
            raw = json.loads(data)
            if raw.get("format") != cls.FORMAT:
                raise ValueError(f"unknown format {raw.get('format')!r}")
            return cls(**raw)
        except (ValueError, TypeError) as exc:
            raise ArchiveIntegrityError(f"{where} is not a {cls.WHAT}: {exc}") from exc


@dataclass
class SegmentManifest(_ManifestFile):
    FORMAT: ClassVar[str] = SEGMENT_FORMAT
    WHAT: ClassVar[str] = "segment manifest"
    run_id: str
    policy: str
    number: int
    event_count: int
    data_file: str
    sha256: str
    stored_bytes: int
    raw_bytes: int
    first_position: str  # "tx:pos" of the first event in the global order
    last_position: str
    min_global_position: int
    max_global_position: int
    min_created_at: str
    max_created_at: str
    streams: int
    anonymized: bool = False
    codec: str = CODEC
    format: str = SEGMENT_FORMAT
    written_at: str = field(default_factory=lambda: iso(datetime.now(UTC)))



def build_segment(
    run_id: str, policy: str, number: int, lines: Iterable[dict[str, Any]], anonymized: bool
) -> tuple[bytes, SegmentManifest]:
    """Compress the lines of one segment; the data and its manifest."""
    body: list[bytes] = []
    positions: list[tuple[int, int]] = []
    times: list[str] = []
    streams: set[str] = set()
    for line in lines:
        body.append(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode())
        positions.append((line["transaction_id"], line["global_position"]))
        times.append(line["created_at"])
        streams.add(line["stream_id"])
    if not body:
        raise ValueError(f"segment {number} of run {run_id} has no events")
    raw = b"\n".join(body) + b"\n"
    data = codecs.compress(CODEC, raw)
    (first_tx, first_pos), (last_tx, last_pos) = min(positions), max(positions)
    global_positions = [pos for _tx, pos in positions]
    manifest = SegmentManifest(
        run_id=run_id, policy=policy, number=number, event_count=len(body),
        data_file=segment_name(number) + DATA_SUFFIX, sha256=sha256(data),
        stored_bytes=len(data), raw_bytes=len(raw),
        first_position=f"{first_tx}:{first_pos}", last_position=f"{last_tx}:{last_pos}",
        min_global_position=min(global_positions),
        max_global_position=max(global_positions),
        min_created_at=min(times), max_created_at=max(times), streams=len(streams),
        anonymized=anonymized,
    )
    return data, manifest


def read_segment(data: bytes, manifest: SegmentManifest, where: str) -> Iterator[dict[str, Any]]:
    """The lines of a segment, after checking its SHA-256, count and every event checksum."""
    digest = sha256(data)
    if digest != manifest.sha256:
        raise ArchiveIntegrityError(
            f"{where}: SHA-256 {digest[:16]}… does not match the manifest's {manifest.sha256[:16]}…"
        )
    raw = codecs.decompress(manifest.codec, data)
    lines = [json.loads(text) for text in raw.splitlines() if text]
    if len(lines) != manifest.event_count:
        raise ArchiveIntegrityError(
            f"{where}: holds {len(lines)} events, the manifest says {manifest.event_count}"
        )
    check_checksums(lines, lambda line, computed: (
        f"{where}: event {line['event_id']} fails its checksum "
        f"(stored {line['checksum'][:16]}…, computed {computed[:16]}…)"
    ))
    return iter(lines)


@dataclass
class RunManifest(_ManifestFile):
    FORMAT: ClassVar[str] = RUN_FORMAT
    WHAT: ClassVar[str] = "run manifest"
    run_id: str
    policy: str
    strategy: str
    event_count: int
    segments: list[dict[str, Any]]  # number, manifest file, sha256 of manifest, event_count
    partitions: list[str]
    policy_spec: dict[str, Any]
    created_at: str
    format: str = RUN_FORMAT
    written_at: str = field(default_factory=lambda: iso(datetime.now(UTC)))

