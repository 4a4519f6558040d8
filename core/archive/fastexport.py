"""The fast path of a segment's export: one COPY streamed, lines built from its text.

The slow path (``export._export`` with an anonymizer) turns every row into a
dict, recomputes its checksum field by field and serialises it again. Here
``COPY (SELECT ...) TO STDOUT`` (``segment_copy``) streams the segment's
columns as text, already in the form the archive line writes them (times in
ISO form, payload in base64); only the rows are sorted in PostgreSQL, so the
columns are formatted while Python turns the rows before them into lines
(``json`` quoting in C, one ``%`` format, no Python object per column but a
string) and verifies each version-2 checksum as one HMAC over the exact
bytes it authenticates (core/checksums.py). Events with a compressed
payload, or an old version-1 checksum, are checked the slow way (their line
parsed), and the first and last line of every segment are also checked the
slow way, from the line alone, so a line that would not verify on restore is
never published. The lines are compressed by zstd (level 1, see ``LEVEL``).

The per-stream ranges of the segment, for the manifest and the archive
catalog (``catalog``), are gathered from the rows as they pass (a grouped
query over the segment's rows cost PostgreSQL another join per segment). The
rows are found by one index probe per planned item, never a hash join that
would read the whole month for every segment (``export_settings``).
Measured alternatives (PostgreSQL building the whole line, and the hex of each
checksum's message, in the COPY) were slower: docs/archive.md.
"""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import zstandard

from ..errors import ArchiveError, ArchiveIntegrityError
from ..keys import CHECKSUM, HmacSha256, KeyRing
from ..serialization import iso
from .segments import CODEC, DATA_SUFFIX, SegmentManifest, line_checksum, segment_name, sha256

if TYPE_CHECKING:
    from .runs import ArchiveRun, ArchiveSegment

# zstd level of a segment: on the benchmark's lines level 1 ran at ~630 MB/s in one thread and
# compressed 9.1x, level 3 ~240 MB/s and 7.7x; zstd's own threads were slower on a segment
# (~10 MB) on 2 shared cores (docs/archive.md).
LEVEL = 1
_NULL = "\\N"  # COPY's text form of NULL
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r", "b": "\b", "f": "\f", "v": "\v"}
_ESCAPED = re.compile(r"\\(.)", re.S)
_quote = json.encoder.encode_basestring  # type: ignore[attr-defined]
_LINE = ('{"event_id":"%s","aggregate_id":%s,"aggregate_type":%s,"event_type":%s,'
         '"event_version":%s,"aggregate_version":%s,"stream_id":%s,"stream_position":%s,'
         '"global_position":%s,"transaction_id":%s,"event_data":%s,"payload":%s,"metadata":%s,'
         '"created_at":"%s","stored_at":"%s","status":%s,"compression":%s,"encryption":%s,'
         '"checksum":%s,"original_size":%s,"stored_size":%s}')


@dataclass
class Collected:
    data: bytes
    manifest: SegmentManifest
    catalog: list[dict[str, Any]] = field(default_factory=list)


def _problem(eid: str, gp: str) -> str:
    return (f"event {eid} (global position {gp}) fails its checksum in PostgreSQL; "
            "it is not archived (run 'evstore verify')")


def _field(copied: str) -> str | None:
    """A column as COPY's text form sent it, back to its text (None for NULL)."""
    if copied == _NULL:
        return None
    if "\\" not in copied:
        return copied
    return _ESCAPED.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), copied)


def _q(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def _n(value: str | None) -> str:
    return "null" if value is None else value


def _read_lines(cur: Any, sql: str, params: dict[str, Any], ring: KeyRing,
                streams: dict[str, list[int]], encoding: str) -> list[bytes]:
    """The segment's lines, every event's checksum checked as its row arrives (PostgreSQL
    writes the next rows meanwhile); ``streams`` gets each stream's range in the segment
    (first and last position, count, lowest and highest global position and creation
    time in microseconds, bytes of its lines)."""
    lines: list[bytes] = []
    append = lines.append
    macs: dict[str, HmacSha256] = {}
    with cur.copy(sql, params) as copy:
        for chunk in copy:  # one CopyData message per row, in the connection's encoding
            row = bytes(chunk)[:-1].decode(encoding)
            f: list[Any] = row.split("\t")
            escaped = "\\" in row.replace("\\N", "")  # not only NULLs (rare but for JSON)
            if escaped:
                f = [_field(x) for x in f]
            (eid, hexid, aid, atype, etype, ever, aver, sid, pos, gp, tx, data, payload, meta,
             created, stored, status, comp, encr, digest, osize, ssize, created_us) = f
            if not escaped:  # "\N" is a NULL here (a text "\N" would have come as "\\N")
                data = None if data == _NULL else data
                payload = None if payload == _NULL else payload
                status = None if status == _NULL else status
                comp = None if comp == _NULL else comp
                encr = None if encr == _NULL else encr
                osize = None if osize == _NULL else osize
                ssize = None if ssize == _NULL else ssize
            line = (_LINE % (eid, _quote(aid), _quote(atype), _quote(etype), ever, aver,
                             _quote(sid), pos, gp, tx, _q(data), _q(payload), _quote(meta),
                             created, stored, _q(status), _q(comp), _q(encr), _quote(digest),
                             _n(osize), _n(ssize))).encode()
            if payload is None and data is not None and digest.startswith("2:"):
                _, kid, mac = digest.split(":")
                ring_mac = macs.get(kid)
                if ring_mac is None:
                    ring_mac = macs[kid] = ring.hmac(CHECKSUM, kid)
                message = "\0".join(("evstore-event-v2", hexid, sid, pos, aid, atype, etype,
                                     ever, aver, created_us, data, meta)).encode()
                if not hmac.compare_digest(ring_mac.hexdigest(message), mac):
                    raise ArchiveIntegrityError(_problem(eid, gp))
            elif not hmac.compare_digest(line_checksum(json.loads(line), ring),
                                         digest):  # compressed or version 1: from the line
                raise ArchiveIntegrityError(_problem(eid, gp))
            append(line)
            p, g, c = int(pos), int(gp), int(created_us)
            r = streams.get(sid)
            if r is None:
                streams[sid] = [p, p, 1, g, g, c, c, len(line)]
                continue
            if p < r[0]:
                r[0] = p
            if p > r[1]:
                r[1] = p
            r[2] += 1
            if g < r[3]:
                r[3] = g
            if g > r[4]:
                r[4] = g
            if c < r[5]:
                r[5] = c
            if c > r[6]:
                r[6] = c
            r[7] += len(line)
    return lines


def _time(microseconds: int) -> datetime:
    return _EPOCH + timedelta(microseconds=microseconds)


def collect_segment(store: Any, run: ArchiveRun, seg: ArchiveSegment, ring: KeyRing) -> Collected:
    """The compressed data and the manifest of one segment, every event checked."""
    streams: dict[str, list[int]] = {}
    params = {"run_id": run.run_id, "segment_no": seg.number}
    with store.db.connection() as conn, conn.transaction(), conn.cursor() as cur:
        cur.execute(store.db.sql("archive", "export_settings"))
        lines = _read_lines(cur, store.db.sql("archive", "segment_copy"), params, ring, streams,
                            conn.info.encoding)
    if not lines:
        raise ValueError(f"segment {seg.number} of run {run.run_id} has no events")
    if sum(r[2] for r in streams.values()) != len(lines):
        raise ArchiveError(f"archive run {run.run_id} segment {seg.number}: its events and its "
                           "stream ranges disagree; nothing was uploaded")
    ends = []
    for sample in (lines[0], lines[-1]):  # the line alone verifies, as a restore will check it
        parsed = json.loads(sample)
        if not hmac.compare_digest(line_checksum(parsed, ring), parsed["checksum"]):
            raise ArchiveIntegrityError(
                f"archive run {run.run_id} segment {seg.number}: the exported line of event "
                f"{parsed['event_id']} does not verify from its own fields; nothing was uploaded")
        ends.append(f"{parsed['transaction_id']}:{parsed['global_position']}")
    lines.append(b"")
    raw = b"\n".join(lines)
    data = zstandard.ZstdCompressor(level=LEVEL).compress(raw)
    manifest = SegmentManifest(
        run_id=run.run_id, policy=run.policy, number=seg.number, event_count=len(lines) - 1,
        data_file=segment_name(seg.number) + DATA_SUFFIX, sha256=sha256(data),
        stored_bytes=len(data), raw_bytes=len(raw),
        first_position=ends[0], last_position=ends[1],
        min_global_position=min(r[3] for r in streams.values()),
        max_global_position=max(r[4] for r in streams.values()),
        min_created_at=iso(_time(min(r[5] for r in streams.values()))),
        max_created_at=iso(_time(max(r[6] for r in streams.values()))), streams=len(streams),
        anonymized=False, codec=CODEC,
    )
    catalog = [{
        "run_id": run.run_id, "segment_no": seg.number, "stream_id": sid,
        "first_position": r[0], "last_position": r[1], "event_count": r[2],
        "min_global_position": r[3], "max_global_position": r[4],
        "min_created_at": _time(r[5]), "max_created_at": _time(r[6]), "bytes": r[7],
    } for sid, r in streams.items()]
    return Collected(data, manifest, catalog)
