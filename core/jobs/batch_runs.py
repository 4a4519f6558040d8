"""One run of one batch, and the sweep that finds runs whose worker died.

A run holds one connection from start to end:

1. **claim**: a session advisory lock keyed by the batch. Only one run of a
   batch at a time, anywhere; a second delivery of the same message finds the
   lock taken and is dropped (the holder will finish, or fail and be retried).
2. **start**: the row becomes 'running' with ``attempts + 1`` (committed, so
   progress and the sweep see it). A batch already succeeded, failed or
   cancelled is not started again.
3. **transaction**: the batch's effects and its outcome ('succeeded', counts,
   details) commit together, and only if the row is still 'running' at this
   attempt. Redelivery after a commit finds 'succeeded' and does nothing.
4. **release** of the claim, also implicit when the connection dies.

A killed worker's connection closes, PostgreSQL rolls its transaction back and
frees its claim: a row 'running' whose claim is free has lost its runner, and
:func:`sweep_orphans` sends it again (probing the claim, never holding it:
see :mod:`.claims`).

**A failed run's connection is closed, never pooled again.** What a failed
attempt leaves behind (its exception's frames, and through them the kind's
objects: a replay's generator over a server-side cursor) is freed later, by
the garbage collector, in whatever thread runs then. Freeing such a generator
sends ``CLOSE cursor`` on *its* connection; back in the pool, that connection
was by then serving another transaction (``mark_failed``, a retry's start),
which the failed ``CLOSE`` aborted: the next statement raised
InFailedSqlTransaction, or, worse, psycopg's COMMIT of the aborted transaction
rolled it back without an error, so a retry "started" without its start being
committed and dropped itself as superseded. A closed connection takes no
stray statement (psycopg skips it), so nothing outlives a failed run on a
connection anyone else uses. A start whose commit is not visible afterwards
raises :class:`BatchStartLost` (the message is retried, never dropped).

**No batch is stranded 'retrying'.** A failed attempt leaves the batch
'retrying' and Dramatiq's Retries sends its retry; when retries are exhausted
the ``BatchFailures`` middleware marks it 'failed'. If either never happens
(the failure could not be recorded, the retry's message was lost),
:func:`sweep_stale_retries` finds the batch still 'retrying', unclaimed, well
after its retry was due, and marks it 'failed' (its attempts exhausted the
retries) or sends it again. An extra message is harmless: a batch runs to
completion at most once (claim, start, the checked transaction above).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..db import close_on_purpose
from .claims import release_claim, runner_gone, try_claim
from .model import Send, StartedBatch
from .repository import JobRepository


class BatchSuperseded(Exception):
    """The batch changed under this run (another attempt took it over): roll back, drop."""


class BatchStartLost(Exception):
    """The start's commit is not visible (its transaction was rolled back): retry, do not drop."""


class BatchRun:
    """A claimed batch on its own connection (see the module's docstring)."""

    def __init__(
        self, repo: JobRepository, conn: psycopg.Connection, job_id: int, number: int, worker: str,
    ) -> None:
        self.repo = repo
        self.db = repo.db
        self.conn = conn
        self.job_id = job_id
        self.number = number
        self.worker = worker
        self.skip_reason = ""
        self.started: StartedBatch | None = None

    @classmethod
    @contextlib.contextmanager
    def claim(cls, repo: JobRepository, job_id: int, number: int, worker: str) -> Iterator[BatchRun | None]:
        """The run, or None when another run of this batch holds the claim."""
        db = repo.db
        with db.connection() as conn:
            if not try_claim(conn, db, job_id, number):
                yield None
                return
            try:
                yield cls(repo, conn, job_id, number, worker)
            except BaseException:
                # A failed run: objects it left (a kind's cursor over this connection,
                # held by the exception's frames) may still send statements when they
                # are freed. Closed, the connection takes none, and the claim goes with
                # it; pooled, it would pass them into someone else's transaction. The
                # claim is released first: the closed session would free it a moment
                # later, and a retry delivered in between would be skipped (dropped).
                with contextlib.suppress(Exception):
                    release_claim(conn, db, job_id, number)
                close_on_purpose(conn)
                raise
            finally:
                # Never hand the pool a connection that may still hold the claim:
                # closed, it is discarded, and the claim goes with it.
                if not conn.closed:
                    try:
                        release_claim(conn, db, job_id, number)
                    except Exception:
                        close_on_purpose(conn)  # the outcome, if any, is committed: nothing to report
                    except BaseException:
                        close_on_purpose(conn)  # an interrupt (time limit, shutdown): let it through
                        raise

    @property
    def _ids(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "number": self.number}

    def start(self) -> StartedBatch | None:
        """Mark the batch 'running' (a new attempt); None when it must not run."""
        db = self.db
        with self.conn.transaction():
            # A producer sends the message before it commits 'queued' (the row
            # locked meanwhile); an UPDATE alone would see 'pending' and skip
            # without waiting. Wait for that lock, so the UPDATE sees the commit.
            self.conn.execute(db.sql("jobs", "lock_batch"), self._ids)
            row = self.conn.execute(db.sql("jobs", "start_batch"),
                                    {**self._ids, "worker": self.worker}).fetchone()
            state = self.conn.execute(db.sql("jobs", "batch_state"), self._ids).fetchone()
            if state is None:
                self.skip_reason = "the batch does not exist (its job was deleted)"
                return None
            (status, _attempts, kind, job_params, _job_status) = state
            if row is None:
                self.skip_reason = f"the batch is {status}"
                return None
            self.repo.refresh(self.conn, self.job_id)
        attempts, params, label, items = row
        # psycopg's COMMIT of a transaction that some statement aborted rolls it back
        # without an error: check that the start is there before running on it.
        state = self.conn.execute(db.sql("jobs", "batch_state"), self._ids).fetchone()
        if state is None or (state[0], int(state[1])) != ("running", int(attempts)):
            found = "gone" if state is None else f"{state[0]} (attempt {state[1]})"
            raise BatchStartLost(f"batch {self.number} of job {self.job_id}: the start of attempt "
                                 f"{attempts} was not committed (the batch is {found})")
        self.started = StartedBatch(self.job_id, self.number, int(attempts), kind, job_params,
                                    params, label, int(items))
        return self.started

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """The batch's transaction: effects and outcome commit together, or not at all."""
        assert self.started is not None
        with self.conn.transaction():
            row = self.conn.execute(self.db.sql("jobs", "verify_running"), self._ids).fetchone()
            status, attempts = row if row is not None else ("gone", "?")
            if (status, attempts) != ("running", self.started.attempt):
                raise BatchSuperseded(
                    f"batch {self.number} of job {self.job_id} is now {status} "
                    f"(attempt {attempts}), not running attempt {self.started.attempt}"
                )
            yield self.conn

    def complete(self, items_done: int, details: dict[str, Any]) -> str:
        """Inside :meth:`transaction`: record success; the job's status afterwards."""
        assert self.started is not None
        self.conn.execute(self.db.sql("jobs", "complete_batch"), {
            **self._ids, "attempt": self.started.attempt, "items_done": items_done,
            "details": Jsonb(details),
        })
        return self.repo.refresh(self.conn, self.job_id)

    def attempt_failed(self, error: str, item: str | None, traceback: str | None) -> None:
        """After the transaction rolled back: keep the error; the batch waits for a retry."""
        assert self.started is not None
        args = {**self._ids, "attempt": self.started.attempt, "error": error, "item": item,
                "traceback": traceback, "worker": self.worker, "final": False}
        with self.conn.transaction():
            self.conn.execute(self.db.sql("jobs", "record_error"), args)
            self.conn.execute(self.db.sql("jobs", "attempt_failed"), args)
            self.repo.refresh(self.conn, self.job_id)


def mark_failed(
    repo: JobRepository, job_id: int, number: int, attempt: int | None, *, error: str | None,
    item: str | None = None, traceback: str | None = None,
) -> bool:
    """Retries are exhausted: the batch is 'failed'; False when it had moved on already.

    A job started with ``stop_on_error`` then stops: its batches not started
    yet are cancelled. Runs on a connection of its own, in a transaction of its
    own (a failed run's connection is never reused: see the module's docstring).
    """
    with repo.db.connection() as conn, conn.transaction():
        return _fail(repo, conn, job_id, number, attempt, error=error, item=item,
                     traceback=traceback)


def _fail(
    repo: JobRepository, conn: psycopg.Connection, job_id: int, number: int, attempt: int | None,
    *, error: str | None, item: str | None = None, traceback: str | None = None,
) -> bool:
    """:func:`mark_failed` inside the caller's transaction."""
    db = repo.db
    state = conn.execute(db.sql("jobs", "batch_state"),
                         {"job_id": job_id, "number": number}).fetchone()
    if state is None:
        return False
    (_status, attempts, _kind, job_params, _job_status) = state
    args = {"job_id": job_id, "number": number,
            "attempt": int(attempts) if attempt is None else attempt,
            "error": error, "item": item, "traceback": traceback}
    if conn.execute(db.sql("jobs", "batch_failed"), args).fetchone() is None:
        return False
    conn.execute(db.sql("jobs", "mark_final_error"), args)
    if (job_params or {}).get("stop_on_error"):
        conn.execute(db.sql("jobs", "cancel_batches"), args)
        conn.execute(db.sql("jobs", "request_cancel"), args)
    repo.refresh(conn, job_id)
    return True


def sweep_orphans(repo: JobRepository, send: Send) -> list[tuple[int, int]]:
    """Send again every 'running' batch whose runner is gone; the (job, batch) pairs sent."""
    db = repo.db
    found: dict[int, list[int]] = defaultdict(list)
    with db.connection() as conn, conn.transaction():
        for job_id, number in conn.execute(db.sql("jobs", "running_batches")).fetchall():
            if runner_gone(conn, db, int(job_id), int(number)):
                found[int(job_id)].append(int(number))
        for job_id in sorted(found):
            repo.send_locked(conn, job_id, found[job_id], send)
    return [(j, n) for j in sorted(found) for n in found[j]]


def sweep_stale_retries(
    repo: JobRepository, send: Send, *, due_after: float, max_retries: int,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Finish every batch left 'retrying' whose retry never came; (sent, failed) pairs.

    A batch 'retrying' whose last failure is older than ``due_after`` seconds
    (the longest backoff, plus the time Dramatiq takes to give a dead worker's
    delayed message back) and whose claim is free has no retry coming as far
    as anyone can tell: it is marked 'failed' when its attempts used up the
    retries (``BatchFailures`` could not record it), else sent again. Each
    batch in a transaction of its own, under its row's lock (lock order: the
    batch, then its job's row).
    """
    db = repo.db
    sent: list[tuple[int, int]] = []
    failed: list[tuple[int, int]] = []
    with db.connection() as conn:
        overdue = db.sql("jobs", "retry_overdue").strip()
        stale = conn.execute(db.sql("jobs", "stale_retrying_batches", overdue=overdue),
                             {"due_after": due_after}).fetchall()
        for job_id, number in ((int(j), int(n)) for j, n in stale):
            ids = {"job_id": job_id, "number": number, "due_after": due_after}
            with conn.transaction():
                row = conn.execute(db.sql("jobs", "lock_stale_retrying", overdue=overdue), ids).fetchone()
                if row is None or not runner_gone(conn, db, job_id, number):
                    continue  # moved on, or a delivery of its retry is starting it
                (attempts,) = row
                if int(attempts) > max_retries:
                    if _fail(repo, conn, job_id, number, int(attempts), error=None):
                        failed.append((job_id, number))
                else:
                    repo.send_locked(conn, job_id, [number], send)
                    sent.append((job_id, number))
    return sent, failed
