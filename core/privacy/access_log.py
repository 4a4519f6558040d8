"""The access log: one row per access to personal data, hash-chained, written in batches.

Row shape (migration 0010, the spec's ``event_access_log``): the event (when
the access returned one), the aggregate (when one), the subject (when one),
every personal event id and subject id the access returned, the accessor,
the access type, the purpose, the client's IP address and user agent, and
the time.

Tamper evidence: rows carry a sequence number ``seq`` and ``chain_hash`` =
``<key id>:HMAC-SHA256(key, previous chain_hash || 0x00 || canonical row)``,
with a key derived from the project secret for the purpose
``access-log-chain`` (core/keys.py): the database never holds it, so whoever
can write the table cannot forge a row. The head row (last seq and hash, with
its own MAC) lets :func:`verify_log` see a row removed from the end too.
Writers chain under the head's row lock, so rows of several processes form
one chain, one writing transaction at a time.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from psycopg import errors as pgerrors
from psycopg.rows import dict_row

from ..keys import KeyRing, UnknownKeyError, keyring

if TYPE_CHECKING:
    import psycopg

    from ..store.persistence import EventStore

CHAIN = "access-log-chain"  # the key ring purpose of the chain's HMACs
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Access ids need to be unique, not secret: one seeded generator, not os.urandom per entry.
_ids = random.Random(os.urandom(32))


def new_access_id() -> uuid.UUID:
    return uuid.UUID(int=_ids.getrandbits(128), version=4)
_US = timedelta(microseconds=1)


def _sql(store: EventStore, name: str) -> str:
    return store.db.sql("privacy_log", name)


@dataclass(frozen=True)
class AccessEntry:
    """One access: what it returned, who made it, why, from where, when."""

    access_type: str
    accessor: str
    purpose: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None
    subject_ids: tuple[str, ...] = ()
    event_ids: tuple[uuid.UUID, ...] = ()
    aggregate_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    subject_id: str | None = None  # defaults to the only subject, if one
    event_id: uuid.UUID | None = None  # defaults to the only event, if one
    access_id: uuid.UUID = field(default_factory=new_access_id)
    accessed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.ip_address is not None:
            try:  # the text PostgreSQL's inet gives back, so the hash survives the round trip
                object.__setattr__(self, "ip_address", str(ipaddress.ip_address(self.ip_address)))
            except ValueError:
                raise ValueError(f"not an IP address: {self.ip_address!r}") from None
        if self.subject_id is None and len(self.subject_ids) == 1:
            object.__setattr__(self, "subject_id", self.subject_ids[0])
        if self.event_id is None and len(self.event_ids) == 1:
            object.__setattr__(self, "event_id", self.event_ids[0])
        if self.accessed_at.tzinfo is None:
            raise ValueError("accessed_at must be timezone-aware")

    def row(self, seq: int, chain_hash: str) -> dict[str, Any]:
        return {
            "access_id": self.access_id, "event_id": self.event_id,
            "aggregate_id": self.aggregate_id, "subject_id": self.subject_id,
            # the ids as one array literal of hex digits: no per-element quoting by the driver
            "event_ids": "{" + ",".join(e.hex for e in self.event_ids) + "}",
            "subject_ids": list(self.subject_ids),
            "accessor": self.accessor, "access_type": self.access_type, "purpose": self.purpose,
            "ip_address": self.ip_address, "user_agent": self.user_agent,
            "accessed_at": self.accessed_at, "details": _json(self.details),
            "seq": seq, "chain_hash": chain_hash,
        }


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _hexes(ids: Any) -> list[str]:
    """Event ids as hex digits, from the array literal inserted or the UUIDs read back."""
    if isinstance(ids, str):
        inner = ids[1:-1]
        return inner.split(",") if inner else []
    return [e.hex for e in ids or ()]


def canonical(seq: int, row: dict[str, Any]) -> bytes:
    """The bytes a row's chain hash covers: every column but ``id`` and the hash itself.

    ``row`` is an inserted row (:meth:`AccessEntry.row`) or one read back
    (``chained_rows``): both give the same bytes for the same row.
    """
    details = row["details"]
    if isinstance(details, str):
        details = json.loads(details)
    at = row["accessed_at"].astimezone(UTC)
    return _json([
        seq, str(row["access_id"]), _text(row["event_id"]), row["aggregate_id"], row["subject_id"],
        _hexes(row["event_ids"]), list(row["subject_ids"] or ()),
        row["accessor"], row["access_type"], row["purpose"], _text(row["ip_address"]),
        row["user_agent"], (at - _EPOCH) // _US, details,
    ]).encode()


def chain_mac(ring: KeyRing, previous: str, seq: int, row: dict[str, Any],
              kid: str | None = None) -> str:
    kid = kid or ring.kid
    message = previous.encode() + b"\x00" + canonical(seq, row)
    return f"{kid}:{ring.hmac(CHAIN, kid).hexdigest(message)}"


def head_mac(ring: KeyRing, seq: int, chain_hash: str, kid: str | None = None) -> str:
    kid = kid or ring.kid
    message = b"head\x00%d\x00" % seq + chain_hash.encode()
    return f"{kid}:{ring.hmac(CHAIN, kid).hexdigest(message)}"


def write_entries(store: EventStore, conn: psycopg.Connection, entries: Iterable[AccessEntry],
                  ring: KeyRing | None = None) -> int:
    """Chain and insert ``entries`` in ``conn``'s current transaction (the caller's or one of its own).

    Takes the head's row lock until that transaction ends: keep it short.
    """
    entries = list(entries)
    if not entries:
        return 0
    ring = ring or keyring(store.settings)
    with conn.transaction():
        head = conn.execute(_sql(store, "lock_head")).fetchone()
        if head is None:
            raise RuntimeError("event_access_log_head has no row: is migration 0010 applied?")
        seq, previous, _mac = int(head[0]), str(head[1]), head[2]
        if previous == "":
            seq, previous = _adopt(store, conn, ring)
        rows = []
        for entry in entries:
            seq += 1
            row = entry.row(seq, "")
            previous = row["chain_hash"] = chain_mac(ring, previous, seq, row)
            rows.append(row)
        columns = {name: [row[name] for row in rows] for name in rows[0]}
        columns["subject_ids"] = [_json(ids) for ids in columns["subject_ids"]]
        conn.execute(_sql(store, "insert_entries"), columns)  # one statement for the batch
        conn.execute(_sql(store, "update_head"), {
            "seq": seq, "chain_hash": previous, "head_mac": head_mac(ring, seq, previous)})
    return len(rows)


def _adopt(store: EventStore, conn: psycopg.Connection, ring: KeyRing) -> tuple[int, str]:
    """The chain's first write adopts the rows logged before migration 0010 (in id order).

    A role that may not read the log (least privilege: it only appends) skips it;
    ``evstore privacy verify-log``, run by the owner, adopts them then.
    """
    seq, previous = 0, ""
    try:
        with conn.transaction():  # a savepoint: a refusal leaves the caller's transaction usable
            legacy = conn.cursor(row_factory=dict_row).execute(
                _sql(store, "unchained_rows")).fetchall()
            chain_row = _sql(store, "chain_row")
            for row in legacy:
                seq += 1
                previous = chain_mac(ring, previous, seq, row)
                conn.execute(chain_row, {"seq": seq, "chain_hash": previous, "id": row["id"]})
    except pgerrors.InsufficientPrivilege:
        return 0, ""
    return seq, previous


def adopt_legacy(store: EventStore) -> int:
    """Chain the rows logged before migration 0010 if no entry was chained yet; how many."""
    ring = keyring(store.settings)
    with store.db.connection() as conn, conn.transaction():
        head = conn.execute(_sql(store, "lock_head")).fetchone()
        if head is None or str(head[1]) != "":
            return 0
        seq, previous = _adopt(store, conn, ring)
        if seq:
            conn.execute(_sql(store, "update_head"), {
                "seq": seq, "chain_hash": previous, "head_mac": head_mac(ring, seq, previous)})
    return seq


def record(store: EventStore, entry: AccessEntry, conn: psycopg.Connection | None = None) -> None:
    """Write one entry now (in ``conn``'s transaction when given): audit rows that must not wait."""
    if conn is not None:
        write_entries(store, conn, [entry])
        return
    with store.db.connection() as own:
        write_entries(store, own, [entry])


# -- verification -------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    checked: int
    head_seq: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def _rows(store: EventStore, chunk: int) -> Iterator[dict[str, Any]]:
    after = 0
    while True:
        with store.db.connection() as conn:
            rows = conn.cursor(row_factory=dict_row).execute(
                _sql(store, "chained_rows"), {"after": after, "limit": chunk}).fetchall()
        yield from rows
        if len(rows) < chunk:
            return
        after = int(rows[-1]["seq"])


def verify_log(store: EventStore, chunk: int = 5000, max_problems: int = 100) -> ChainReport:
    """Walk the chain: a changed row, a removed row (inside or at the end) or a row inserted
    outside the log writer is each reported; ``ok`` when there is none."""
    ring = keyring(store.settings)
    problems: list[str] = []

    def problem(text: str) -> None:
        if len(problems) < max_problems:
            problems.append(text)

    with store.db.connection() as conn:
        (unchained,) = conn.execute(_sql(store, "count_unchained")).fetchone() or (0,)
        ids = [i for (i,) in conn.execute(_sql(store, "unchained_ids"))] if unchained else []
        head = conn.execute(_sql(store, "read_head")).fetchone()
    if unchained:
        problem(f"{unchained} row(s) not in the chain (inserted outside the access log), "
                f"ids {', '.join(map(str, ids))}{' …' if unchained > len(ids) else ''}")
    expected, previous, checked = 1, "", 0
    for row in _rows(store, chunk):
        seq = int(row["seq"])
        if seq != expected:
            problem(f"rows {expected}..{seq - 1} of the chain are missing (deleted)")
        kid = str(row["chain_hash"]).partition(":")[0]
        try:
            good = chain_mac(ring, previous, seq, row, kid) == row["chain_hash"]
        except UnknownKeyError:
            problem(f"row {seq}: chained with key {kid}, which this process does not have")
            good = True
        if not good:
            problem(f"row {seq} (access {row['access_id']}) does not match its chain hash: "
                    "changed, or the row before it was removed")
        previous, expected, checked = str(row["chain_hash"]), seq + 1, checked + 1
    head_seq = int(head[0]) if head else -1
    if head is None:
        problem("the chain's head row is missing")
    else:
        if head_seq != expected - 1 or str(head[1]) != previous:
            problem(f"the chain ends at row {expected - 1} but its head says row {head_seq}: "
                    "rows removed from (or added at) the end")
        if head_seq > 0:
            kid = str(head[2]).partition(":")[0]
            try:
                if head_mac(ring, head_seq, str(head[1]), kid) != head[2]:
                    problem("the chain's head does not match its MAC: it was changed")
            except UnknownKeyError:
                problem(f"the head was signed with key {kid}, which this process does not have")
    return ChainReport(checked, head_seq, problems)


# -- reading -----------------------------------------------------------------------------


def entries_about(store: EventStore, subject: str, limit: int = 100_000) -> list[dict[str, Any]]:
    """The log's entries about one subject (as its only or one of its subjects), oldest first."""
    with store.db.connection() as conn:
        return conn.cursor(row_factory=dict_row).execute(
            _sql(store, "subject_entries"), {"subject": subject, "limit": limit}).fetchall()
