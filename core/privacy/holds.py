"""Legal holds: a held subject cannot be forgotten, and its events' partitions are not dropped.

``place`` / ``release`` record a hold (``legal_holds``, migration 0010) and
write an access-log entry each. :func:`ensure_not_held` is called where a
forget starts (the forget job, ``cleanup_gdpr_data``) and again by each of
its batches, under :func:`lock_subject` (a hold placed while the job runs
stops the batches not yet done; ``evstore jobs requeue`` completes them once
the hold is released): for a held subject it
writes an audit entry (``forget_refused``, in a transaction of its own, so
the refusal stays recorded whatever the caller does next) and raises
:class:`LegalHoldError`. :func:`partition_pin` is asked by a retention run
before it drops a month partition: a partition holding an event of a held
subject is archived but kept, and the run reports it as pinned; a run that
deletes row by row keeps a held subject's events (archive/finalize.py).

A subject's events are those whose ``metadata.user_id`` or aggregate id is the
subject, or whose declared subject path (core/privacy/declarations.py) holds
it. A declared path inside the event data is matched only for events stored
as JSON (not compressed or encrypted): metadata and aggregate ids always.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import EventStoreError
from .access_log import AccessEntry, record
from .declarations import registry_for

if TYPE_CHECKING:
    import psycopg

    from ..store.persistence import EventStore


class LegalHoldError(EventStoreError):
    """The subject is under legal hold: the action was refused."""


@dataclass(frozen=True)
class Hold:
    hold_id: int
    subject_id: str
    reason: str
    placed_by: str
    placed_at: datetime


def _sql(store: EventStore, name: str) -> str:
    return store.db.sql("privacy_log", name)


def place(store: EventStore, subject: str, reason: str, by: str) -> tuple[Hold, bool]:
    """Hold ``subject`` (the hold, and whether it is new; an existing hold is kept as it is)."""
    if not subject:
        raise ValueError("a subject id is needed")
    if not reason or not reason.strip():
        raise ValueError("a legal hold needs a reason (--reason)")
    with store.db.connection() as conn, conn.transaction():
        lock_subject(store, conn, subject)
        row = conn.execute(_sql(store, "hold_subject"),
                           {"subject": subject, "reason": reason, "by": by}).fetchone()
        if row is not None:
            record(store, AccessEntry("legal_hold", by, purpose="legal hold",
                                      subject_ids=(subject,), details={"reason": reason}), conn)
    found = hold_of(store, subject)
    assert found is not None
    return found, row is not None


def release(store: EventStore, subject: str, by: str) -> Hold:
    """Release ``subject``'s hold (LegalHoldError when it has none)."""
    found = hold_of(store, subject)
    if found is None:
        raise LegalHoldError(f"subject {subject!r} is not under legal hold: nothing to release")
    with store.db.connection() as conn, conn.transaction():
        row = conn.execute(_sql(store, "release_subject"), {"subject": subject, "by": by}).fetchone()
        if row is not None:
            record(store, AccessEntry("legal_hold_release", by, purpose="legal hold",
                                      subject_ids=(subject,), details={"reason": found.reason}), conn)
    return found


def lock_subject(store: EventStore, conn: psycopg.Connection, subject: str) -> None:
    """Serialise, until ``conn``'s transaction ends, with a hold placed on ``subject``."""
    conn.execute(_sql(store, "subject_hold_lock"), {"subject": subject})


def hold_of(store: EventStore, subject: str, conn: psycopg.Connection | None = None) -> Hold | None:
    if conn is not None:
        row = conn.execute(_sql(store, "active_hold"), {"subject": subject}).fetchone()
    else:
        with store.db.connection() as own:
            row = own.execute(_sql(store, "active_hold"), {"subject": subject}).fetchone()
    return Hold(*row) if row is not None else None


def active(store: EventStore) -> list[Hold]:
    with store.db.connection() as conn:
        return [Hold(*row) for row in conn.execute(_sql(store, "active_holds"))]


def ensure_not_held(store: EventStore, subject: str, action: str = "forget",
                    accessor: str | None = None) -> None:
    """Refuse ``action`` on a held subject: an audit entry, then LegalHoldError."""
    found = hold_of(store, subject)
    if found is None:
        return
    record(store, AccessEntry(
        f"{action}_refused", accessor or "evstore", purpose="legal hold",
        subject_ids=(subject,), details={"reason": found.reason, "hold_id": found.hold_id,
                                         "action": action}))
    raise LegalHoldError(
        f"subject {subject!r} is under legal hold since "
        f"{found.placed_at.isoformat(timespec='seconds')} ({found.reason}): {action} refused; "
        f"release the hold first (evstore privacy release {subject})"
    )


def held_subjects(store: EventStore) -> list[str]:
    """The subjects under legal hold now."""
    with store.db.connection() as conn:
        return [s for (s,) in conn.execute(_sql(store, "held_subjects"))]


def subject_match(store: EventStore) -> dict[str, Any]:
    """Parameters of the declared subject paths (``declared_*``) for privacy_log.sql's matches."""
    types, roots, paths = [], [], []
    for pd in registry_for(store.settings).declarations():
        root, steps = pd.subject_steps()
        if root == "aggregate_id" or (root, steps) == ("metadata", ("user_id",)):
            continue  # matched by every query already
        types.append(pd.event_type)
        roots.append(root)
        paths.append(".".join(steps))
    return {"d_types": types, "d_roots": roots, "d_paths": paths}


def partition_pin(conn: psycopg.Connection, store: EventStore, partition: str,
                  name: str | None = None) -> str | None:
    """Why a partition must not be dropped (it holds a held subject's events), or None.

    ``partition`` is the quoted table name (``name`` the one to show); call it in the
    transaction, under the lock, that guards the drop.
    """
    held = held_subjects(store)
    if not held:
        return None
    text = store.db.sql("privacy_log", "held_in_partition", partition=partition)
    (count,) = conn.execute(text, {"subjects": held, **subject_match(store)}).fetchone() or (0,)
    if not count:
        return None
    return (f"partition {name or partition} pinned: it holds {count} event(s) of subject(s) under legal "
            "hold; archived, not dropped (dropped by a later run once the hold is released)")
