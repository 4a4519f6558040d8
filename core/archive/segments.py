"""The archive format: a segment is zstd-compressed lines, one per event, plus a manifest.

One line per event holds every column of the events table: as COPY text rows
in format 2 (rows.py, written now), as JSON objects in format 1 (written
before; read still). ``event_data`` and ``metadata`` are kept as the exact
JSON text PostgreSQL gave, so a restore writes back the same jsonb value, byte
for byte, whatever numbers it holds. Parsed, a line of either format is the
same dict (``FIELDS``; ``payload``, a compressed event body, in base64). The
manifest names each file with its SHA-256 and size, the event
count, the position range in the global order and the time range.

A run's manifest (``run.json``) lists its segments and is written last: an
archive folder without ``run.json`` is a run that did not finish.

Nothing in an archive is trusted before its manifest is: every manifest
carries an HMAC signature (:mod:`evstore.core.keys`, purpose MANIFEST) over
its canonical JSON, checked before anything it names is read; the files it
names must be plain names in its own folder; and a segment may decompress to
no more than the size its manifest records.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import zstandard

from .. import checksums, codecs
from ..config import load_settings
from ..errors import ArchiveIntegrityError
from ..keys import CHECKSUM, MANIFEST, KeyRing, UnknownKeyError, keyring
from ..serialization import checksum_of, dumps, iso
from .rows import FORMAT_V1, FORMAT_V2, SUFFIX_V1, SUFFIX_V2, encode_lines, parse_segment

SEGMENT_FORMAT = FORMAT_V2  # what is written now; FORMAT_V1 is read too
SEGMENT_FORMATS = (FORMAT_V1, FORMAT_V2)
RUN_FORMAT = "evstore-archive-run/1"
CODEC = "zstd"
DATA_SUFFIX = SUFFIX_V2
DATA_SUFFIXES = (SUFFIX_V1, SUFFIX_V2)
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


# A file a manifest names: a plain name in the manifest's own folder, never a path.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_CHUNK = 1 << 20


def check_plain_name(name: Any, where: str) -> str:
    """``name`` if it is a plain file name; ArchiveIntegrityError otherwise (read nothing)."""
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name) or ".." in name:
        raise ArchiveIntegrityError(
            f"{where} names {str(name)[:80]!r}, which is not a plain file name in its folder; "
            "refused before reading anything"
        )
    return name


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


def line_checksum(line: dict[str, Any], ring: KeyRing | None = None) -> str:
    """Recompute an archived event's checksum from the line alone, in the line's own version.

    Version 2 (``2:<key id>:…``) is the keyed HMAC over the exact JSON text
    the line holds (as PostgreSQL printed it), with the key the checksum
    names (UnknownKeyError when this process lacks it); version 1 the old
    unkeyed digest. A payload is decompressed no further than its recorded size.
    """
    if line["payload"] is not None:
        data = codecs.decompress(line["compression"], base64.b64decode(line["payload"]),
                                 limit=int(line["original_size"]))
    else:
        data = line["event_data"].encode()
    stored = line["checksum"]
    if checksums.version_of(stored) == 2:
        ring = ring or keyring(load_settings())
        kid = stored.split(":")[1]
        mac = ring.hmac(CHECKSUM, kid).hexdigest(checksums.message_of(
            line, data, line["metadata"].encode()))
        return f"2:{kid}:{mac}"
    return checksum_of(line, dumps(json.loads(data)), dumps(json.loads(line["metadata"])))


def check_checksums(
    lines: Iterable[dict[str, Any]], problem: Callable[[dict[str, Any], str], str],
    ring: KeyRing | None = None,
) -> None:
    """ArchiveIntegrityError(problem(line, computed)) for the first line whose
    recomputed checksum differs from its own."""
    ring = ring or keyring(load_settings())
    for line in lines:
        computed = line_checksum(line, ring)
        if not hmac.compare_digest(computed, line["checksum"]):
            raise ArchiveIntegrityError(problem(line, computed))


M = TypeVar("M", bound="_ManifestFile")


def _canonical(body: dict[str, Any]) -> bytes:
    """The bytes a manifest's signature covers: its JSON without the signature,
    keys sorted, no spaces."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _check_signature(raw: dict[str, Any], where: str, trust_unsigned: bool) -> None:
    signature = raw.pop("signature", None)
    if signature is None:
        if trust_unsigned:
            return
        raise ArchiveIntegrityError(
            f"{where} is not signed (written before manifests were signed, or forged): refused; "
            "if you know where it came from, accept it with --trust-unsigned"
        )
    try:
        good = isinstance(signature, str) and keyring(load_settings()).verify(
            MANIFEST, _canonical(raw), signature
        )
    except UnknownKeyError as exc:
        raise ArchiveIntegrityError(f"{where}: its signature was {exc}") from None
    if not good:
        raise ArchiveIntegrityError(
            f"{where}: the signature does not match its content (changed or forged); "
            "nothing it names was read"
        )


class _ManifestFile:
    """JSON (de)serialisation shared by the segment and run manifests, signed."""

    FORMAT: ClassVar[str]
    FORMATS: ClassVar[tuple[str, ...]]
    WHAT: ClassVar[str]

    def to_bytes(self) -> bytes:
        """The manifest as JSON, with its signature (the current key, purpose MANIFEST)."""
        body = json.loads(json.dumps(asdict(self), default=str))  # type: ignore[call-overload]
        body["signature"] = keyring(load_settings()).sign(MANIFEST, _canonical(body))
        return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False).encode()

    def check_names(self, where: str) -> None:
        """ArchiveIntegrityError for a named file that is not a plain name."""

    @classmethod
    def from_bytes(cls: type[M], data: bytes, where: str, trust_unsigned: bool = False) -> M:
        """The manifest, once its signature (and, with ``trust_unsigned``, its
        absence) and the names it holds are accepted."""
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise ArchiveIntegrityError(f"{where} is not a {cls.WHAT}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ArchiveIntegrityError(f"{where} is not a {cls.WHAT}: not a JSON object")
        _check_signature(raw, where, trust_unsigned)
        try:
            if raw.get("format") not in cls.FORMATS:
                raise ValueError(f"unknown format {raw.get('format')!r}")
            manifest = cls(**raw)
        except (ValueError, TypeError) as exc:
            raise ArchiveIntegrityError(f"{where} is not a {cls.WHAT}: {exc}") from exc
        manifest.check_names(where)
        return manifest


@dataclass
class SegmentManifest(_ManifestFile):
    FORMAT: ClassVar[str] = SEGMENT_FORMAT
    FORMATS: ClassVar[tuple[str, ...]] = SEGMENT_FORMATS
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

    def check_names(self, where: str) -> None:
        check_plain_name(self.data_file, where)
        if self.codec != CODEC:
            raise ArchiveIntegrityError(f"{where}: unknown codec {self.codec!r}")
        if not isinstance(self.raw_bytes, int) or self.raw_bytes < 0:
            raise ArchiveIntegrityError(f"{where}: raw_bytes must be a size in bytes")


def build_segment(
    run_id: str, policy: str, number: int, lines: Iterable[dict[str, Any]], anonymized: bool,
    fmt: str = SEGMENT_FORMAT,
) -> tuple[bytes, SegmentManifest]:
    """Compress the lines of one segment in format ``fmt``; the data and its manifest."""
    lines = list(lines)
    positions: list[tuple[int, int]] = []
    times: list[str] = []
    streams: set[str] = set()
    for line in lines:
        positions.append((line["transaction_id"], line["global_position"]))
        times.append(line["created_at"])
        streams.add(line["stream_id"])
    if not lines:
        raise ValueError(f"segment {number} of run {run_id} has no events")
    if fmt == FORMAT_V1:
        raw = b"".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode()
                       + b"\n" for line in lines)
    else:
        raw = encode_lines(lines)
    data = codecs.compress(CODEC, raw)
    (first_tx, first_pos), (last_tx, last_pos) = min(positions), max(positions)
    global_positions = [pos for _tx, pos in positions]
    manifest = SegmentManifest(
        run_id=run_id, policy=policy, number=number, event_count=len(lines),
        data_file=segment_name(number) + (SUFFIX_V1 if fmt == FORMAT_V1 else SUFFIX_V2),
        sha256=sha256(data), stored_bytes=len(data), raw_bytes=len(raw),
        first_position=f"{first_tx}:{first_pos}", last_position=f"{last_tx}:{last_pos}",
        min_global_position=min(global_positions),
        max_global_position=max(global_positions),
        min_created_at=min(times), max_created_at=max(times), streams=len(streams),
        anonymized=anonymized, format=fmt,
    )
    return data, manifest


def decompress_capped(data: bytes, size: int, where: str) -> bytes:
    """zstd ``data`` decompressed in chunks; ArchiveIntegrityError as soon as it
    exceeds ``size`` (a decompression bomb is never allocated) or ends short of it."""
    out = bytearray()
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data),
                                                             read_across_frames=True)
        with reader:
            while chunk := reader.read(min(_CHUNK, size + 1 - len(out))):
                out += chunk
                if len(out) > size:
                    raise ArchiveIntegrityError(
                        f"{where}: decompresses to more than the {size} bytes its manifest "
                        "records; refused"
                    )
    except zstandard.ZstdError as exc:
        raise ArchiveIntegrityError(f"{where}: not valid zstd data ({exc})") from None
    if len(out) != size:
        raise ArchiveIntegrityError(
            f"{where}: decompresses to {len(out)} bytes, its manifest records {size}"
        )
    return bytes(out)


def _parse_lines(raw: bytes, manifest: SegmentManifest, where: str) -> list[dict[str, Any]]:
    lines = parse_segment(raw, FIELDS, where)
    if len(lines) != manifest.event_count:
        raise ArchiveIntegrityError(
            f"{where}: holds {len(lines)} events, the manifest says {manifest.event_count}"
        )
    return lines


def read_segment(data: bytes, manifest: SegmentManifest, where: str) -> Iterator[dict[str, Any]]:
    """The lines of a segment, after checking its SHA-256, size, count and every
    event checksum."""
    digest = sha256(data)
    if digest != manifest.sha256:
        raise ArchiveIntegrityError(
            f"{where}: SHA-256 {digest[:16]}… does not match the manifest's {manifest.sha256[:16]}…"
        )
    lines = _parse_lines(decompress_capped(data, manifest.raw_bytes, where), manifest, where)
    check_checksums(lines, lambda line, computed: (
        f"{where}: event {line['event_id']} fails its checksum "
        f"(stored {line['checksum'][:16]}…, computed {computed[:16]}…)"
    ))
    return iter(lines)


@dataclass
class RunManifest(_ManifestFile):
    FORMAT: ClassVar[str] = RUN_FORMAT
    FORMATS: ClassVar[tuple[str, ...]] = (RUN_FORMAT,)
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

    def check_names(self, where: str) -> None:
        if not isinstance(self.segments, list) or not all(
            isinstance(seg, dict) and "manifest" in seg and "manifest_sha256" in seg
            for seg in self.segments
        ):
            raise ArchiveIntegrityError(f"{where}: 'segments' must list manifests and their SHA-256")
        for seg in self.segments:
            check_plain_name(seg["manifest"], where)

