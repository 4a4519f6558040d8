"""Aggregate classes the snapshot guard tests configure on their workers
(EVSTORE_AGGREGATE_CLASSES=tests.integration.archive.guard_classes:...)."""

from __future__ import annotations

import os
from typing import Any

from evstore.workload import UserAccount

FAIL_ENV = "EVSTORE_TEST_GUARD_FAIL"


class FlakyAccount(UserAccount):
    """UserAccount ("User"), except that rebuilding the aggregate named by
    EVSTORE_TEST_GUARD_FAIL raises (a bug in one aggregate's history)."""

    def apply(self, event: Any) -> None:
        if self.id and self.id == os.environ.get(FAIL_ENV):
            raise RuntimeError("guard test: this aggregate cannot be rebuilt")
        super().apply(event)
