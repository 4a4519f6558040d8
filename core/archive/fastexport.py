"""The fast path of a segment's export: PostgreSQL builds the lines, Python checks bytes.

The slow path (``export._export`` with an anonymizer) turns every row into a
dict, recomputes its checksum field by field and serialises it again: most
of the time per event was Python work. Here one query returns, per event,
its archive line already serialised by PostgreSQL (``json_build_object``
over the columns of ``segments.FIELDS``) and the exact message its
version-2 checksum authenticates (core/checksums.py), so verifying an event
is one HMAC over bytes; the lines are joined and compressed by zstd's own
threads. Events with a compressed payload, or an old version-1 checksum,
are checked the slow way (their line parsed), and the first and last line of
every segment are also checked the slow way, from the line alone, so a line
that would not verify on restore is never published.

While reading, the per-stream ranges of the segment are collected for the
archive catalog (``catalog``), written with the segment's verified status.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import zstandard

from ..errors import ArchiveIntegrityError
from ..keys import CHECKSUM, KeyRing
from ..serialization import iso
from .segments import CODEC, DATA_SUFFIX, SegmentManifest, line_checksum, segment_name, sha256

_quote = json.encoder.encode_basestring  # type: ignore[attr-defined]

if TYPE_CHECKING:
    from .runs import ArchiveRun, ArchiveSegment

_FETCH = 5000


@dataclass
class Collected:
    data: bytes
    manifest: SegmentManifest
    catalog: list[dict[str, Any]] = field(default_factory=list)


def _problem(eid: str, gp: int) -> str:
    return (f"event {eid} (global position {gp}) fails its checksum in PostgreSQL; "
            "it is not archived (run 'evstore verify')")


_LINE = ('{"event_id":"%s","aggregate_id":%s,"aggregate_type":%s,"event_type":%s,'
         '"event_version":%d,"aggregate_version":%d,"stream_id":%s,"stream_position":%d,'
         '"global_position":%d,"transaction_id":%d,"event_data":%s,"payload":%s,"metadata":%s,'
         '"created_at":"%s","stored_at":"%s","status":%s,"compression":%s,"encryption":%s,'
         '"checksum":%s,"original_size":%s,"stored_size":%s}')


def _s(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def _n(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def collect_segment(store: Any, run: ArchiveRun, seg: ArchiveSegment, ring: KeyRing) -> Collected:
    """The compressed data and the manifest of one segment, every event checked."""
    lines: list[bytes] = []
    streams: dict[str, list[Any]] = {}
    first = last = None
    min_gp = max_gp = None
    min_ca = max_ca = None
    macs: dict[str, Any] = {}
    with store.db.connection() as conn, conn.transaction(), conn.cursor(binary=True) as cur:
        cur.execute(store.db.sql("archive", "export_work_mem"))
        cur.execute(store.db.sql("archive", "segment_lines"),
                    {"run_id": run.run_id, "segment_no": seg.number})
        while rows := cur.fetchmany(_FETCH):
            for (eid, hexid, aid, atype, etype, ever, aver, stream_id, position, gp, tx, data,
                 payload, meta, created, stored, status, comp, encr, digest, osize, ssize,
                 created_us, created_at) in rows:
                line = _LINE % (eid, _quote(aid), _quote(atype), _quote(etype), ever, aver,
                                _quote(stream_id), position, gp, tx, _s(data), _s(payload),
                                _quote(meta), created, stored, _s(status), _s(comp), _s(encr),
                                _quote(digest), _n(osize), _n(ssize))
                encoded = line.encode()
                if payload is None and digest.startswith("2:"):
                    kid, _, mac = digest[2:].partition(":")
                    ring_mac = macs.get(kid) or macs.setdefault(kid, ring.hmac(CHECKSUM, kid))
                    message = b"".join((
                        (f"evstore-event-v2\0{hexid}\0{stream_id}\0{position}\0{aid}\0{atype}\0"
                         f"{etype}\0{ever}\0{aver}\0{created_us}\0").encode(),
                        data.encode(), b"\0", meta.encode()))
                    if not hmac.compare_digest(ring_mac.hexdigest(message), mac):
                        raise ArchiveIntegrityError(_problem(eid, gp))
                else:  # a compressed payload or a version-1 checksum: from the line
                    if not hmac.compare_digest(line_checksum(json.loads(line), ring), digest):
                        raise ArchiveIntegrityError(_problem(eid, gp))
                lines.append(encoded)
                if first is None:
                    first, min_gp, max_gp, min_ca, max_ca = (tx, gp), gp, gp, created_at, created_at
                else:
                    min_gp, max_gp = min(min_gp, gp), max(max_gp, gp)  # type: ignore[type-var]
                    if created_at < min_ca:
                        min_ca = created_at
                    elif created_at > max_ca:
                        max_ca = created_at
                last = (tx, gp)
                s = streams.get(stream_id)
                if s is None:
                    streams[stream_id] = [position, position, 1, gp, gp, created_at, created_at,
                                          len(encoded)]
                else:  # a stream's events come in stream (and global) order
                    s[1] = position
                    s[2] += 1
                    s[4] = gp
                    s[6] = max(s[6], created_at)
                    s[5] = min(s[5], created_at)
                    s[7] += len(encoded)
    if not lines:
        raise ValueError(f"segment {seg.number} of run {run.run_id} has no events")
    for sample in {0, len(lines) - 1}:  # the line alone verifies, as a restore will check it
        parsed = json.loads(lines[sample])
        if not hmac.compare_digest(line_checksum(parsed, ring), parsed["checksum"]):
            raise ArchiveIntegrityError(
                f"archive run {run.run_id} segment {seg.number}: the exported line of event "
                f"{parsed['event_id']} does not verify from its own fields; nothing was uploaded")
    raw = b"\n".join(lines) + b"\n"
    data = zstandard.ZstdCompressor(level=3, threads=2).compress(raw)
    assert first is not None and last is not None and min_ca is not None and max_ca is not None
    manifest = SegmentManifest(
        run_id=run.run_id, policy=run.policy, number=seg.number, event_count=len(lines),
        data_file=segment_name(seg.number) + DATA_SUFFIX, sha256=sha256(data),
        stored_bytes=len(data), raw_bytes=len(raw),
        first_position=f"{first[0]}:{first[1]}", last_position=f"{last[0]}:{last[1]}",
        min_global_position=int(min_gp or 0), max_global_position=int(max_gp or 0),
        min_created_at=iso(min_ca), max_created_at=iso(max_ca), streams=len(streams),
        anonymized=False, codec=CODEC,
    )
    catalog = [{
        "run_id": run.run_id, "segment_no": seg.number, "stream_id": sid,
        "first_position": v[0], "last_position": v[1], "event_count": v[2],
        "min_global_position": v[3], "max_global_position": v[4],
        "min_created_at": v[5], "max_created_at": v[6], "bytes": v[7],
    } for sid, v in streams.items()]
    return Collected(data, manifest, catalog)
