"""Next-run computation: five fields, six with seconds first, macros, time zones and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from backstream.schedule.cron import CronSchedule

BERLIN = "Europe/Berlin"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_five_fields_run_at_minute_precision() -> None:
    assert CronSchedule("30 2 * * *").next_after(utc(2026, 5, 1, 2, 29, 59)) == utc(2026, 5, 1, 2, 30)
    assert CronSchedule("30 2 * * *").next_after(utc(2026, 5, 1, 2, 30)) == utc(2026, 5, 2, 2, 30)


def test_six_fields_put_seconds_first() -> None:
    every_two = CronSchedule("*/2 * * * * *")
    assert every_two.next_after(utc(2026, 5, 1, 12, 0, 0)) == utc(2026, 5, 1, 12, 0, 2)
    assert every_two.next_after(utc(2026, 5, 1, 12, 0, 1, 500000)) == utc(2026, 5, 1, 12, 0, 2)
    assert CronSchedule("15 0 3 * * *").next_after(utc(2026, 5, 1)) == utc(2026, 5, 1, 3, 0, 15)


def test_macros() -> None:
    assert CronSchedule("@daily").next_after(utc(2026, 5, 1, 12)) == utc(2026, 5, 2)
    assert CronSchedule("@hourly").next_after(utc(2026, 5, 1, 12, 1)) == utc(2026, 5, 1, 13)
    assert CronSchedule("@weekly").next_after(utc(2026, 5, 1)).weekday() == 6  # Sunday


def test_times_are_wall_clock_times_in_the_jobs_time_zone() -> None:
    nightly = CronSchedule("0 2 * * *", BERLIN)
    summer = nightly.next_after(utc(2026, 6, 30, 12))
    winter = nightly.next_after(utc(2026, 11, 30, 12))
    assert summer == utc(2026, 7, 1, 0) and winter == utc(2026, 12, 1, 1)  # 02:00 CEST / CET
    assert summer.utcoffset() == timedelta(hours=2)


def test_a_time_that_dst_skips_runs_once_after_the_gap() -> None:
    # 2026-03-29 02:00-03:00 does not exist in Berlin
    nightly = CronSchedule("30 2 * * *", BERLIN)
    first = nightly.next_after(utc(2026, 3, 28, 23))
    assert first.astimezone(UTC) == utc(2026, 3, 29, 1)  # 03:00 CEST
    assert nightly.next_after(first).astimezone(UTC) == utc(2026, 3, 30, 0, 30)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CronSchedule("@daily").next_after(datetime(2026, 1, 1))


@pytest.mark.parametrize("expression", ["", "* * *", "61 * * * *", "* * * * * * * *", "@sometimes"])
def test_bad_expressions_are_value_errors(expression: str) -> None:
    with pytest.raises(ValueError):
        CronSchedule(expression)
