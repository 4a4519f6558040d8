"""Schedules: APScheduler 3 policies that decide *when*, and enqueue jobs (see docs/schedules.md).

Importing this package does not import APScheduler; building a scheduler does.
"""

from __future__ import annotations

from .config import Schedule, Trigger, load_schedules
from .service import FiringOutcome, SchedulerService, engine_enqueue

__all__ = [
    "FiringOutcome",
    "Schedule",
    "SchedulerService",
    "Trigger",
    "engine_enqueue",
    "load_schedules",
]
