"""A batch's claim: a session advisory lock held by the process that runs the batch.

The claim is held on the run's own connection for the whole run, so it is
freed when the run ends or when its connection dies (a killed worker): a batch
'running' whose claim is free has lost its runner. Producers that resend such
batches (the orphan sweep, ``requeue --stale``) only *probe* the claim (take it
and release it at once), never hold it while sending: a worker that receives
the message before their transaction commits must find the claim free and
wait on the batch row's lock, or it would drop the only message of the batch.
"""

from __future__ import annotations

import psycopg

from ..db import Database


def claim_key(schema: str, job_id: int, number: int) -> str:
    return f"evstore-batch:{schema}:{job_id}:{number}"


def _flag(conn: psycopg.Connection, db: Database, name: str, key: str) -> bool:
    row = conn.execute(db.sql("jobs", name), {"key": key}).fetchone()
    assert row is not None
    (value,) = row
    return bool(value)


def try_claim(conn: psycopg.Connection, db: Database, job_id: int, number: int) -> bool:
    """Take the batch's claim on ``conn`` (held until released or the connection closes)."""
    return _flag(conn, db, "try_claim", claim_key(db.schema, job_id, number))


def release_claim(conn: psycopg.Connection, db: Database, job_id: int, number: int) -> None:
    _flag(conn, db, "release_claim", claim_key(db.schema, job_id, number))


def runner_gone(conn: psycopg.Connection, db: Database, job_id: int, number: int) -> bool:
    """Is the batch's claim free (taken and released at once: see the module's docstring)?"""
    return _flag(conn, db, "probe_claim", claim_key(db.schema, job_id, number))
