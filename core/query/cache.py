"""The result cache: in process, LRU with a TTL, keyed by criteria and horizon.

A key is the normalised criteria (cursor and limit included) and the
global-order horizon the rows were read under. Any committed append moves the
horizon, so a cached answer is only ever returned for the very set of
transactions it was read from: never staler than what it claims. Deletions
(forget, archive) call :meth:`invalidate`.
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
        self._entries: OrderedDict[tuple[str, int], tuple[float, Any, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(criteria: Any, horizon: int) -> tuple[str, int]:
        shape = criteria.normalised()
        shape["after"] = criteria.after
        return json.dumps(shape, sort_keys=True, default=str), horizon

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def get(self, key: tuple[str, int]) -> tuple[Any, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or time.monotonic() - entry[0] > self.ttl:
                if entry is not None:
                    del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1], entry[2]

    def put(self, key: tuple[str, int], result: Any, metrics: Any) -> None:
        if self.size <= 0 or self.ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic(), result, replace(metrics))
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
            doomed = [k for k, (_, result, _m) in self._entries.items()
                      if any(_holds(e, subject) for e in result.events)]
            for k in doomed:
                del self._entries[k]
            return len(doomed)


def _holds(event: Any, subject: str) -> bool:
    return bool(event.aggregate_id == subject or event.metadata.user_id == subject
                or event.stream_id == subject)
