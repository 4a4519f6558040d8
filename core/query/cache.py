"""The result cache: in process, LRU with a TTL, keyed by criteria and horizon.

A key is the normalised criteria (cursor and limit included); an entry keeps
the global-order horizon its rows were read under. Every event of a
transaction below a horizon has committed by the time the horizon is read, so
an answer read under horizon H is the answer under a later horizon H' exactly
when no event has a transaction id in [H, H'): the service asks the database
that (one probe of the order index) before it serves an entry, and moves the
entry to H'. The horizon alone moves with any transaction of the cluster, so
it would be a key that almost never hits. Deletions (forget, archive) call
:meth:`invalidate`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any


class QueryCache:
    def __init__(self, size: int, ttl: float) -> None:
        self.size = size
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, int, Any, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(criteria: Any) -> str:
        shape = criteria.normalised()
        shape["after"] = criteria.after
        return json.dumps(shape, sort_keys=True, default=str)

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def get(self, key: str, horizon: int, unchanged: Any) -> tuple[Any, Any] | None:
        """The entry if still true at ``horizon`` (``unchanged(old, new)``: no event in between)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and time.monotonic() - entry[0] > self.ttl:
                del self._entries[key]
                entry = None
        if entry is not None and entry[1] != horizon and not unchanged(entry[1], horizon):
            entry = None
        with self._lock:
            if entry is None:
                self.misses += 1
                return None
            if key in self._entries:
                self._entries[key] = (entry[0], max(entry[1], horizon), entry[2], entry[3])
                self._entries.move_to_end(key)
            self.hits += 1
            return entry[2], entry[3]

    def holds(self, key: str) -> bool:
        """Whether an entry (perhaps expired) is kept: only then is the horizon read first."""
        with self._lock:
            return key in self._entries

    def miss(self) -> None:
        with self._lock:
            self.misses += 1

    def put(self, key: str, horizon: int, result: Any, metrics: Any) -> None:
        if self.size <= 0 or self.ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic(), horizon, result, replace(metrics))
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def invalidate(self, subject: str | None = None) -> int:
        """Drop every entry (``None``) or those holding an event of the subject
        (its aggregate id or metadata user_id, as declarations name subjects)."""
        with self._lock:
            if subject is None:
                dropped = len(self._entries)
                self._entries.clear()
                return dropped
            doomed = [k for k, (_, _h, result, _m) in self._entries.items()
                      if any(_holds(e, subject) for e in result.events)]
            for k in doomed:
                del self._entries[k]
            return len(doomed)


def _holds(event: Any, subject: str) -> bool:
    return bool(event.aggregate_id == subject or event.metadata.user_id == subject
                or event.stream_id == subject)
