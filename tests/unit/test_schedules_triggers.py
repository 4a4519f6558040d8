"""Schedule triggers and tables from configuration, without a scheduler running."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from evstore.core.errors import ConfigurationError
from evstore.schedules.config import ANCHOR, Schedule, Trigger, _from_table


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("interval: 30s", 30.0), ("interval: 5m", 300.0), ("interval: 1.5h", 5400.0),
     ("interval: 1d", 86400.0), ("INTERVAL:   2 m ", 120.0)],
)
def test_interval_units_become_seconds(text: str, seconds: float) -> None:
    trigger = Trigger.parse(text, "schedules.x")
    assert trigger == Trigger("interval", seconds=seconds)
    assert str(trigger) == f"interval: {seconds:g}s"


def test_cron_keeps_its_five_fields() -> None:
    trigger = Trigger.parse("cron:  0 2 * * * ", "schedules.x")
    assert trigger == Trigger("cron", cron="0 2 * * *")
    assert str(trigger) == "cron: 0 2 * * *"


@pytest.mark.parametrize(
    "text",
    ["interval: 0s", "interval: 5w", "interval: 5", "interval: -1m", "every: 5m", "cron: 0 2 * *",
     "cron: 0 2 * * * *", "0 2 * * *", ""],
)
def test_malformed_schedules_name_both_forms_and_the_input(text: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Trigger.parse(text, "schedules.nightly")
    assert str(caught.value) == (
        "schedules.nightly: schedule must be 'cron: <5 fields>' or 'interval: <n>s|m|h|d' "
        f"(got {text!r})"
    )


def test_a_bad_cron_field_is_reported_with_the_expression() -> None:
    with pytest.raises(ConfigurationError, match=r"^schedules.x: bad cron expression '61 2 \* \* \*': "):
        Trigger.parse("cron: 61 2 * * *", "schedules.x")


def test_interval_times_count_from_the_fixed_anchor() -> None:
    trigger = Trigger.parse("interval: 1h", "x")
    now = datetime(2026, 3, 4, 10, 59, 59, tzinfo=UTC)
    assert trigger.latest_due(now) == datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    on_the_hour = datetime(2026, 3, 4, 11, 0, tzinfo=UTC)
    assert trigger.latest_due(on_the_hour) == on_the_hour
    due = trigger.latest_due(now)
    assert due is not None and (due - ANCHOR).total_seconds() % 3600 == 0


def test_cron_latest_due_and_next_after_in_utc() -> None:
    trigger = Trigger.parse("cron: 0 2 * * *", "x")
    paris = timezone(timedelta(hours=1))
    now = datetime(2026, 3, 4, 9, 30, tzinfo=paris)  # 08:30 UTC
    assert trigger.latest_due(now) == datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
    assert trigger.next_after(now) == datetime(2026, 3, 5, 2, 0, tzinfo=UTC)
    exactly = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
    assert trigger.latest_due(exactly) == exactly
    assert trigger.next_after(exactly) == datetime(2026, 3, 5, 2, 0, tzinfo=UTC)


def test_monthly_cron_finds_a_due_time_weeks_back() -> None:
    trigger = Trigger.parse("cron: 0 3 1 * *", "x")
    assert trigger.latest_due(datetime(2026, 3, 25, tzinfo=UTC)) == datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def test_tables_become_schedules_of_each_task() -> None:
    assert _from_table("partitions", {"task": "partitions", "schedule": "cron: 0 2 * * *",
                                      "months_ahead": 6}) == Schedule(
        "partitions", "partitions", Trigger("cron", cron="0 2 * * *"), {"months_ahead": 6})
    job = _from_table("snaps", {"task": "Job", "schedule": "interval: 1h",
                                "job_kind": "snapshot_build", "params": {"batch_size": 10}})
    assert job == Schedule("snaps", "job", Trigger("interval", seconds=3600.0),
                           {"job_kind": "snapshot_build", "params": {"batch_size": 10}})
    assert job.describe() == "job snapshot_build"
    archive = _from_table("old", {"task": "archive", "schedule": "interval: 1d", "policy": "old"})
    assert archive.params == {"policy": "old"}
    assert archive.describe() == "archive policy old"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"task": "backup", "schedule": "interval: 1d"},
         "schedules.s: task must be one of partitions, archive, job (got 'backup')"),
        ({"task": "partitions"}, "schedules.s: 'schedule' is required"),
        ({"task": "job", "schedule": "interval: 1d"}, "schedules.s: task 'job' needs 'job_kind'"),
        ({"task": "archive", "schedule": "interval: 1d"}, "schedules.s: task 'archive' needs 'policy'"),
        ({"task": "partitions", "schedule": "interval: 1d", "month_ahead": 2, "at": 1},
         "schedules.s: unknown setting(s) at, month_ahead"),
        ({"task": "partitions", "schedule": "hourly"},
         "schedules.s: schedule must be 'cron: <5 fields>' or 'interval: <n>s|m|h|d' (got 'hourly')"),
    ],
)
def test_bad_tables_are_refused_with_the_table_named(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _from_table("s", table)
    assert str(caught.value) == message
