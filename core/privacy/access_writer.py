"""The access log's writer: entries buffered in memory, written in batches by a daemon thread.

An entry is written at most ``interval`` seconds after it was added (a full
batch wakes the thread sooner), in one transaction per :data:`WRITE_CHUNK`
entries; ``close`` and the interpreter's exit write what is left. With
``interval`` 0, ``add`` writes before it returns. Items may be functions that
make the entry (or None: nothing to log), run by the writer: the personal-data
analysis of a read then happens off the read's path.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .access_log import AccessEntry, write_entries

if TYPE_CHECKING:
    from ..store.persistence import EventStore

log = logging.getLogger(__name__)
WRITE_CHUNK = 1000  # entries per writing transaction
MAX_BUFFERED = 200_000  # entries kept while the database refuses them (oldest dropped beyond)


class BufferedWriter:
    """Entries in memory, written in batches by a daemon thread at a bounded delay."""

    def __init__(self, store: EventStore, interval: float) -> None:
        self.store = store
        self.interval = interval
        self._buffer: list[Any] = []  # AccessEntry, or a function making one
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _writers.add(self)

    def add(self, entry: AccessEntry | Callable[[], AccessEntry | None]) -> None:
        """Buffer an entry, or a function making it (None: nothing to log) when written."""
        if self.interval <= 0:
            made = entry if isinstance(entry, AccessEntry) else entry()
            if made is not None:
                self._write([made])  # before the read returns; an error reaches the caller
            return
        with self._lock:
            self._buffer.append(entry)
            full = len(self._buffer) >= WRITE_CHUNK
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="evstore-access-log",
                                                daemon=True)
                self._thread.start()
        if full:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # kept in the buffer, tried again next time
                log.warning("access log: entries not written yet (%s); retrying", exc)

    def _write(self, entries: list[AccessEntry]) -> None:
        # Pipelined: BEGIN and the head's lock in one round trip, then the insert, the
        # head's update and COMMIT in another (the chain needs the head before the MACs).
        with self.store.db.connection() as conn, conn.pipeline():
            for i in range(0, len(entries), WRITE_CHUNK):
                write_entries(self.store, conn, entries[i:i + WRITE_CHUNK])

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
            batch = [entry for entry in map(_made, batch) if entry is not None]
            if not batch:
                return
            try:
                self._write(batch)
            except BaseException:
                with self._lock:
                    self._buffer[:0] = batch
                    if len(self._buffer) > MAX_BUFFERED:
                        lost = len(self._buffer) - MAX_BUFFERED
                        del self._buffer[:lost]
                        log.error("access log: %d entries dropped (database unavailable)", lost)
                raise

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        try:
            self.flush()
        except Exception as exc:
            log.error("access log: %d entries could not be written at close: %s",
                      len(self._buffer), exc)
        _writers.discard(self)


def _made(entry: Any) -> AccessEntry | None:
    if isinstance(entry, AccessEntry):
        return entry
    try:
        return entry()  # type: ignore[no-any-return]
    except Exception as exc:  # one bad call must not lose the batch
        log.error("access log: an entry could not be made: %s", exc)
        return None


_writers: weakref.WeakSet[BufferedWriter] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for writer in list(_writers):
        try:
            writer.flush()
        except Exception as exc:
            log.error("access log: entries lost at exit: %s", exc)
