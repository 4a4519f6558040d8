"""The fast path of a segment's export: one COPY streamed, its rows the segment's lines.

The slow path (``export._export`` with an anonymizer) turns every row into a
dict, recomputes its checksum field by field and serialises it again. Here
``COPY (SELECT ...) TO STDOUT`` (``segment_copy``) streams the segment's
columns as the lines of segment format 2 (rows.py): each row PostgreSQL sends
is kept as it came. Its first eleven fields joined by NUL are the message of
a version-2 checksum, so each event is verified as one HMAC over the bytes
received, with no line built and no field decoded. A row whose message part
holds an escape (a backslash in its JSON, a tab in a name, a NULL), a
compressed payload or an old version-1 checksum is parsed and checked the slow
way (``line_of_row``), and the first and last line of every segment are also
checked from the parsed line alone, as a restore will, so a line that would
not verify on restore is never published. The lines are compressed by zstd
(level 1, see ``LEVEL``) in chunks as they arrive (``_Rows``).

The per-stream ranges of the segment, for the manifest and the archive
catalog (``catalog``), are gathered from the rows as they pass (a grouped
query over the segment's rows cost PostgreSQL another join per segment). The
rows are found by one index probe per planned item, never a hash join that
would read the whole month for every segment (``export_settings``).
Measured alternatives (format 1's JSON lines built in Python from the columns,
or by PostgreSQL) were two to three times slower: docs/archive.md.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import zstandard

from ..checksums import MESSAGE_HEAD
from ..errors import ArchiveError, ArchiveIntegrityError
from ..keys import CHECKSUM, HmacSha256, KeyRing
from ..serialization import iso
from .policies import ArchivalStrategy
from .rows import COLUMNS, FORMAT_V2, MESSAGE_COLUMNS, line_of_row, time_of
from .segments import CODEC, DATA_SUFFIX, SegmentManifest, line_checksum, segment_name, sha256

if TYPE_CHECKING:
    from .runs import ArchiveRun, ArchiveSegment

# zstd level of a segment: on the benchmark's lines level 1 ran at ~630 MB/s in one thread and
# compressed 9.1x, level 3 ~240 MB/s and 7.7x; zstd's own threads were slower on a segment
# (~10 MB) on 2 shared cores (docs/archive.md).
LEVEL = 1
_PREFIX = MESSAGE_HEAD.encode()
_WIDTH = len(COLUMNS)
# where a field is in a row (rows.COLUMNS)
_SID, _POS, _CREATED, _GP, _PAYLOAD, _CHECKSUM = (
    COLUMNS.index(n) for n in ("stream_id", "stream_position", "created_at", "global_position",
                               "payload", "checksum"))


@dataclass
class Collected:
    data: bytes
    manifest: SegmentManifest
    catalog: list[dict[str, Any]] = field(default_factory=list)


class _Rows:
    """A segment's lines as they arrive: compressed in chunks meanwhile (PostgreSQL, the
    slower side, keeps writing the next rows), the first and last kept whole."""

    CHUNK = 512  # lines per compressed chunk

    def __init__(self) -> None:
        self.count = self.raw_bytes = 0
        self.first = self.last = b""
        self._pending: list[bytes] = []
        self._compressor = zstandard.ZstdCompressor(level=LEVEL).compressobj()
        self._out: list[bytes] = []

    def append(self, row: bytes) -> None:
        if not self.count:
            self.first = row
        self.last = row
        self.count += 1
        self.raw_bytes += len(row)
        self._pending.append(row)
        if len(self._pending) >= self.CHUNK:
            self._out.append(self._compressor.compress(b"".join(self._pending)))
            self._pending.clear()

    def finish(self) -> bytes:
        """The zstd frame of every line (its size is not in its header: read it as a stream)."""
        self._out.append(self._compressor.compress(b"".join(self._pending)))
        self._pending.clear()
        self._out.append(self._compressor.flush())
        return b"".join(self._out)


class _SparseRange(Exception):
    """A segment's range holds more events of others than of its own."""


def _copy_sql(db: Any, name: str) -> str:
    """An export COPY of archive.sql with the columns of a line filled in."""
    return str(db.sql("archive", name, columns=db.sql("archive", "segment_columns")))


def _problem(eid: str, gp: Any) -> str:
    return (f"event {eid} (global position {gp}) fails its checksum in PostgreSQL; "
            "it is not archived (run 'evstore verify')")


def _read_rows(cur: Any, sql: str, params: dict[str, Any], ring: KeyRing,
               streams: dict[str, list[int]], encoding: str,
               keep: set[bytes] | None = None) -> _Rows:
    """The segment's lines, every event's checksum checked as its row arrives (PostgreSQL
    writes the next rows meanwhile); ``streams`` gets each stream's range in the segment
    (first and last position, count, lowest and highest global position and creation
    time in microseconds, bytes of its lines). With ``keep`` (hex ids), rows of other
    events are skipped; _SparseRange when they outnumber the kept ones (the caller
    then reads the segment by its items instead)."""
    rows = _Rows()
    append = rows.append
    macs: dict[bytes, HmacSha256] = {}
    utf8 = encoding.replace("_", "-").lower() in ("utf-8", "utf8")
    skipped, most = 0, (len(keep) if keep is not None else 0) + 1000
    with cur.copy(sql, params) as copy:
        for chunk in copy:  # one CopyData message per row, in the connection's encoding
            row = bytes(chunk) if utf8 else bytes(chunk).decode(encoding).encode()
            if keep is not None and row[:32] not in keep:
                skipped += 1
                if skipped > most:  # psycopg cancels the COPY, the transaction rolls back
                    raise _SparseRange
                continue
            f = row.split(b"\t")
            if len(f) != _WIDTH:
                raise ArchiveError(f"the export query gave {len(f)} fields, not {_WIDTH}")
            digest = f[_CHECKSUM]
            message = b"\0".join(f[:MESSAGE_COLUMNS])
            if f[_PAYLOAD] == b"\\N" and digest[:2] == b"2:" and b"\\" not in message:
                _, kid, mac = digest.split(b":")
                ring_mac = macs.get(kid)
                if ring_mac is None:
                    ring_mac = macs[kid] = ring.hmac(CHECKSUM, kid.decode())
                if not hmac.compare_digest(ring_mac.hexdigest(_PREFIX + message), mac.decode()):
                    raise ArchiveIntegrityError(_problem(str(uuid.UUID(f[0].decode())),
                                                         f[_GP].decode()))
                sid = f[_SID].decode()
            else:  # an escape, a compressed payload or version 1: from the parsed line
                line = line_of_row(row.rstrip(b"\n").decode())
                if not hmac.compare_digest(line_checksum(line, ring), line["checksum"]):
                    raise ArchiveIntegrityError(_problem(line["event_id"],
                                                         line["global_position"]))
                sid = line["stream_id"]
            append(row)
            p, g, c = int(f[_POS]), int(f[_GP]), int(f[_CREATED])
            r = streams.get(sid)
            if r is None:
                streams[sid] = [p, p, 1, g, g, c, c, len(row)]
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
            r[7] += len(row)
    return rows


def _range_is_exact(run: ArchiveRun) -> bool:
    """Whether a segment's range holds its events only: the run selected every event
    created before its cutoff (no filter, no per-stream count), so an event between two
    of a segment's events in the global order, created within the segment's times, was
    selected too, and into that segment. (A restore since planning may add one: the
    count check then reads the range again, keeping the run's items.)"""
    policy = run.archival_policy
    return (policy.strategy is not ArchivalStrategy.COUNT_BASED and not policy.event_types
            and not policy.aggregate_types)


def _scan(db: Any, params: dict[str, Any], ring: KeyRing, streams: dict[str, list[int]],
          by_items: bool) -> _Rows:
    """One ordered scan of a segment's range; with ``by_items``, only the run's items kept."""
    with db.connection() as conn, conn.transaction(), conn.cursor() as cur:
        keep = None
        if by_items:
            with cur.copy(db.sql("archive", "segment_item_ids"), params) as copy:
                keep = {bytes(chunk)[:32] for chunk in copy}
        cur.execute(db.sql("archive", "export_range_settings"))
        return _read_rows(cur, _copy_sql(db, "segment_range_copy"), params, ring, streams,
                          conn.info.encoding, keep)


def _by_range(store: Any, run: ArchiveRun, seg: ArchiveSegment, ring: KeyRing,
              streams: dict[str, list[int]]) -> _Rows | None:
    """The segment's rows by an ordered scan of its range in the global order (None for a
    sparse range: more other events than its own)."""
    params = {"run_id": run.run_id, "segment_no": seg.number, "first_tx": seg.first_tx,
              "first_gp": seg.first_gp, "last_tx": seg.last_tx, "last_gp": seg.last_gp,
              "min_created_at": seg.min_created_at, "max_created_at": seg.max_created_at}
    exact = _range_is_exact(run)
    try:
        rows = _scan(store.db, params, ring, streams, by_items=not exact)
        if exact and rows.count != seg.event_count:  # the range changed since planning
            streams.clear()
            rows = _scan(store.db, params, ring, streams, by_items=True)
    except _SparseRange:
        return None
    return rows


def collect_segment(store: Any, run: ArchiveRun, seg: ArchiveSegment, ring: KeyRing) -> Collected:
    """The compressed data and the manifest of one segment, every event checked."""
    streams: dict[str, list[int]] = {}
    rows = _by_range(store, run, seg, ring, streams) if seg.first_tx is not None else None
    if rows is None:  # planned before ranges were recorded, or a sparse range
        streams.clear()
        params = {"run_id": run.run_id, "segment_no": seg.number}
        with store.db.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(store.db.sql("archive", "export_settings"))
            rows = _read_rows(cur, _copy_sql(store.db, "segment_copy"), params, ring,
                              streams, conn.info.encoding)
    if not rows.count:
        raise ValueError(f"segment {seg.number} of run {run.run_id} has no events")
    if sum(r[2] for r in streams.values()) != rows.count:
        raise ArchiveError(f"archive run {run.run_id} segment {seg.number}: its events and its "
                           "stream ranges disagree; nothing was uploaded")
    ends = []
    for sample in (rows.first, rows.last):  # the line alone verifies, as a restore will check it
        parsed = line_of_row(sample.rstrip(b"\n").decode())
        if not hmac.compare_digest(line_checksum(parsed, ring), parsed["checksum"]):
            raise ArchiveIntegrityError(
                f"archive run {run.run_id} segment {seg.number}: the exported line of event "
                f"{parsed['event_id']} does not verify from its own fields; nothing was uploaded")
        ends.append(f"{parsed['transaction_id']}:{parsed['global_position']}")
    data = rows.finish()
    manifest = SegmentManifest(
        run_id=run.run_id, policy=run.policy, number=seg.number, event_count=rows.count,
        data_file=segment_name(seg.number) + DATA_SUFFIX, sha256=sha256(data),
        stored_bytes=len(data), raw_bytes=rows.raw_bytes,
        first_position=ends[0], last_position=ends[1],
        min_global_position=min(r[3] for r in streams.values()),
        max_global_position=max(r[4] for r in streams.values()),
        min_created_at=iso(time_of(min(r[5] for r in streams.values()))),
        max_created_at=iso(time_of(max(r[6] for r in streams.values()))), streams=len(streams),
        anonymized=False, codec=CODEC, format=FORMAT_V2,
    )
    catalog = [{
        "run_id": run.run_id, "segment_no": seg.number, "stream_id": sid,
        "first_position": r[0], "last_position": r[1], "event_count": r[2],
        "min_global_position": r[3], "max_global_position": r[4],
        "min_created_at": time_of(r[5]), "max_created_at": time_of(r[6]), "bytes": r[7],
    } for sid, r in streams.items()]
    return Collected(data, manifest, catalog)
