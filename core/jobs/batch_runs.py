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
:func:`sweep_orphans` sends it again.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from .repository import JobRepository, Send


class BatchSuperseded(Exception):
    """The batch changed under this run (another attempt took it over): roll back, drop."""


def claim_key(schema: str, job_id: int, number: int) -> str:
    return f"evstore-batch:{schema}:{job_id}:{number}"


@dataclass(frozen=True)
class StartedBatch:
    job_id: int
    number: int
    attempt: int
    kind: str
    job_params: dict[str, Any]
    params: dict[str, Any]
    label: str
    items_total: int


class BatchRun:
    """A claimed batch on its own connection (see the module's docstring)."""

    def __init__(self, repo: JobRepository, conn: Any, job_id: int, number: int, worker: str) -> None:
        self.repo = repo
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
        key = claim_key(repo.store.schema, job_id, number)
        with repo.store.connection() as conn:
            if not conn.execute(repo.sql("try_claim"), {"key": key}).fetchone()[0]:
                yield None
                return
            try:
                yield cls(repo, conn, job_id, number, worker)
            finally:
                # Never hand the pool a connection that may still hold the claim:
                # closed, it is discarded, and the claim goes with it.
                try:
                    conn.execute(repo.sql("release_claim"), {"key": key})
                except Exception:
                    conn.close()  # the outcome, if any, is committed: nothing to report
                except BaseException:
                    conn.close()  # an interrupt (time limit, shutdown): let it through
                    raise

    @property
    def _ids(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "number": self.number}

    def start(self) -> StartedBatch | None:
        """Mark the batch 'running' (a new attempt); None when it must not run."""
        sql = self.repo.sql
        with self.conn.transaction():
            # A producer sends the message before it commits 'queued' (the row
            # locked meanwhile); an UPDATE alone would see 'pending' and skip
            # without waiting. Wait for that lock, so the UPDATE sees the commit.
            self.conn.execute(sql("lock_batch"), self._ids)
            row = self.conn.execute(sql("start_batch"), {**self._ids, "worker": self.worker}).fetchone()
            state = self.conn.execute(sql("batch_state"), self._ids).fetchone()
            if state is None:
                self.skip_reason = "the batch does not exist (its job was deleted)"
                return None
            if row is None:
                self.skip_reason = f"the batch is {state[0]}"
                return None
            self.repo.refresh(self.conn, self.job_id)
        attempts, params, label, items = row
        self.started = StartedBatch(self.job_id, self.number, int(attempts), state[2], state[3],
                                    params, label, int(items))
        return self.started

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """The batch's transaction: effects and outcome commit together, or not at all."""
        assert self.started is not None
        with self.conn.transaction():
            row = self.conn.execute(self.repo.sql("verify_running"), self._ids).fetchone()
            if row is None or (row[0], row[1]) != ("running", self.started.attempt):
                raise BatchSuperseded(
                    f"batch {self.number} of job {self.job_id} is now "
                    f"{row[0] if row else 'gone'} (attempt {row[1] if row else '?'}), "
                    f"not running attempt {self.started.attempt}"
                )
            yield self.conn

    def complete(self, items_done: int, details: dict[str, Any]) -> str:
        """Inside :meth:`transaction`: record success; the job's status afterwards."""
        assert self.started is not None
        self.conn.execute(self.repo.sql("complete_batch"), {
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
            self.conn.execute(self.repo.sql("record_error"), args)
            self.conn.execute(self.repo.sql("attempt_failed"), args)
            self.repo.refresh(self.conn, self.job_id)


def mark_failed(
    repo: JobRepository, job_id: int, number: int, attempt: int | None, *, error: str | None,
    item: str | None = None, traceback: str | None = None,
) -> bool:
    """Retries are exhausted: the batch is 'failed'; False when it had moved on already.

    A job started with ``stop_on_error`` then stops: its batches not started
    yet are cancelled.
    """
    with repo.store.connection() as conn, conn.transaction():
        state = conn.execute(repo.sql("batch_state"), {"job_id": job_id, "number": number}).fetchone()
        if state is None:
            return False
        args = {"job_id": job_id, "number": number,
                "attempt": int(state[1]) if attempt is None else attempt,
                "error": error, "item": item, "traceback": traceback}
        if conn.execute(repo.sql("batch_failed"), args).fetchone() is None:
            return False
        conn.execute(repo.sql("mark_final_error"), args)
        if (state[3] or {}).get("stop_on_error"):
            conn.execute(repo.sql("cancel_batches"), args)
            conn.execute(repo.sql("request_cancel"), args)
        repo.refresh(conn, job_id)
    return True


def sweep_orphans(repo: JobRepository, send: Send) -> list[tuple[int, int]]:
    """Send again every 'running' batch whose runner is gone; the (job, batch) pairs sent."""
    found: dict[int, list[int]] = defaultdict(list)
    with repo.store.connection() as conn, conn.transaction():
        for job_id, number in conn.execute(repo.sql("running_batches")).fetchall():
            key = claim_key(repo.store.schema, int(job_id), int(number))
            if conn.execute(repo.sql("probe_claim"), {"key": key}).fetchone()[0]:
                found[int(job_id)].append(int(number))
        for job_id in sorted(found):
            send(job_id, found[job_id])
            conn.execute(repo.sql("mark_queued"), {"job_id": job_id, "numbers": found[job_id]})
            repo.refresh(conn, job_id)
    return [(j, n) for j in sorted(found) for n in found[j]]
