"""Schedules from configuration: what fires, on which trigger, with which parameters.

``[schedules.NAME]`` tables of the configuration file (``EVSTORE_CONFIG``)::

    [schedules.partitions]
    task = "partitions"              # partition upkeep
    schedule = "cron: 0 2 * * *"     # or "interval: 1d" (s, m, h, d)
    months_ahead = 3

    [schedules.snapshots]
    task = "job"                     # any job kind of the engine (snapshot sweeps, GDPR ...)
    job_kind = "snapshot_build"
    params = { aggregate_class = "myapp.domain:User", config = { every_n_events = 100 } }
    schedule = "interval: 1h"

Every archival policy with a ``schedule`` (``[archive.policies.NAME]``) fires
as ``archive:NAME`` (task ``archive``). With no ``partitions`` schedule
configured, partition upkeep runs daily at 02:00 UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from evstore.core.archive.policies import list_policies
from evstore.core.config_file import schedule_tables
from evstore.core.errors import ConfigurationError

TASKS = ("partitions", "archive", "job")
DEFAULT_PARTITIONS = "cron: 0 2 * * *"
# Interval triggers count from this instant, so every replica computes the same times.
ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


@dataclass(frozen=True)
class Trigger:
    kind: str  # "cron" or "interval"
    cron: str | None = None
    seconds: float | None = None

    @classmethod
    def parse(cls, text: str, where: str) -> Trigger:
        kind, _, spec = str(text).partition(":")
        kind, spec = kind.strip().lower(), spec.strip()
        if kind == "cron" and len(spec.split()) == 5:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(spec, timezone=UTC)
            except ValueError as exc:
                raise ConfigurationError(f"{where}: bad cron expression {spec!r}: {exc}") from None
            return cls("cron", cron=spec)
        if kind == "interval":
            m = _INTERVAL.match(spec)
            if m and float(m.group(1)) > 0:
                return cls("interval", seconds=float(m.group(1)) * _UNITS[m.group(2)])
        raise ConfigurationError(
            f"{where}: schedule must be 'cron: <5 fields>' or 'interval: <n>s|m|h|d' (got {text!r})"
        )

    def apscheduler(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        if self.kind == "cron":
            assert self.cron is not None
            return CronTrigger.from_crontab(self.cron, timezone=UTC)
        assert self.seconds is not None
        return IntervalTrigger(seconds=self.seconds, start_date=ANCHOR, timezone=UTC)

    def latest_due(self, now: datetime) -> datetime | None:
        """The latest scheduled time at or before ``now`` (None if none in the last 40 days)."""
        now = now.astimezone(UTC)
        if self.kind == "interval":
            assert self.seconds is not None
            periods = int((now - ANCHOR).total_seconds() // self.seconds)
            return ANCHOR + timedelta(seconds=periods * self.seconds)
        trigger = self.apscheduler()
        for window in (timedelta(hours=1), timedelta(days=2), timedelta(days=40)):
            found, cursor = None, now - window
            for _ in range(10_000):
                nxt = trigger.get_next_fire_time(found, cursor)
                if nxt is None or nxt > now:
                    break
                found, cursor = nxt, nxt + timedelta(seconds=1)
            if found is not None:
                return found  # type: ignore[no-any-return]
        return None

    def next_after(self, now: datetime) -> datetime | None:
        return self.apscheduler().get_next_fire_time(None, now.astimezone(UTC) + timedelta(microseconds=1))  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return f"cron: {self.cron}" if self.kind == "cron" else f"interval: {self.seconds:g}s"


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    trigger: Trigger
    params: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.task == "archive":
            return f"archive policy {self.params['policy']}"
        if self.task == "job":
            return f"job {self.params['job_kind']}"
        return f"partition upkeep, {self.params.get('months_ahead', 3)} months ahead"


def _from_table(name: str, table: dict[str, Any]) -> Schedule:
    where = f"schedules.{name}"
    table = dict(table)
    task = str(table.pop("task", "")).strip().lower()
    if task not in TASKS:
        raise ConfigurationError(f"{where}: task must be one of {', '.join(TASKS)} (got {task!r})")
    if "schedule" not in table:
        raise ConfigurationError(f"{where}: 'schedule' is required")
    trigger = Trigger.parse(table.pop("schedule"), where)
    params: dict[str, Any]
    if task == "job":
        if not table.get("job_kind"):
            raise ConfigurationError(f"{where}: task 'job' needs 'job_kind'")
        params = {"job_kind": str(table.pop("job_kind")), "params": dict(table.pop("params", {}))}
    elif task == "archive":
        if not table.get("policy"):
            raise ConfigurationError(f"{where}: task 'archive' needs 'policy'")
        params = {"policy": str(table.pop("policy"))}
    else:
        params = {"months_ahead": int(table.pop("months_ahead", 3))}
    if table:
        raise ConfigurationError(f"{where}: unknown setting(s) {', '.join(sorted(table))}")
    return Schedule(name, task, trigger, params)


def load_schedules(extra: list[Schedule] | None = None) -> dict[str, Schedule]:
    """Every schedule: the configuration file's, the scheduled archival policies', ``extra``."""
    found = {name: _from_table(name, table) for name, table in schedule_tables().items()}
    for name, policy in list_policies().items():
        if policy.schedule:
            key = f"archive:{name}"
            trigger = Trigger.parse(policy.schedule, f"archive.policies.{name}.schedule")
            found.setdefault(key, Schedule(key, "archive", trigger, {"policy": name}))
    if not any(s.task == "partitions" for s in found.values()):
        found["partitions"] = Schedule(
            "partitions", "partitions", Trigger.parse(DEFAULT_PARTITIONS, "default"),
            {"months_ahead": 3},
        )
    for schedule in extra or []:
        found[schedule.name] = schedule
    return dict(sorted(found.items()))
