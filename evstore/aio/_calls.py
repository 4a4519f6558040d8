"""How the asyncio facade calls the synchronous core: a bounded thread pool per store.

Every store call is one synchronous core call run in a thread of a pool no
larger than the store's connection pool, so the event loop only submits the
call and is woken with its result: it never waits on PostgreSQL. Why threads
and not psycopg's async pool: ``benchmarks/aio.py`` measures both, and an
async-pool path would be a second implementation of appends (lock, version
check, insert, checksums), which the core keeps in one place.

Cancellation. A call that has not started yet is dropped. A call that has
started runs to its end in its thread (each store call is one transaction:
it commits all or nothing); the cancelled task waits for that end before the
``CancelledError`` reaches it, so when ``await task`` raises, the store is
settled: the append either committed whole or wrote nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Calls:
    """A bounded thread pool that runs synchronous calls for coroutines."""

    def __init__(self, max_workers: int, name: str = "evstore-aio") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1 (got {max_workers})")
        self.max_workers = max_workers
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
        self._closed = False
        self._lock = threading.Lock()

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a pool thread; see the module's note on cancellation."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this evstore.aio object is closed")
            # in the caller's context: its store.access_context(...) reaches the access log
            cf: Future[T] = self._executor.submit(contextvars.copy_context().run,
                                                  functools.partial(fn, *args, **kwargs))
        fut = asyncio.wrap_future(cf)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if not cf.cancel():  # started: let it finish, so the cancellation finds it settled
                await _settle(fut)
            raise

    def close(self, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
        # Waiting: the calls queued run too. Not waiting: those not started are dropped.
        self._executor.shutdown(wait=wait, cancel_futures=not wait)


async def _settle(fut: asyncio.Future[Any]) -> None:
    """Wait for a started call to end, even if the task is cancelled again meanwhile."""
    while not fut.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait([fut])
    if not fut.cancelled():
        fut.exception()  # retrieved: its error belongs to a call nobody waits for any more
