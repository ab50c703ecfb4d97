"""Cron schedules: when a job runs next, computed by croniter (the ``schedule`` extra).

Five fields (minute precision), six with seconds first (``*/2 * * * * *``), or ``@daily``-style
macros; times are computed in the job's time zone, so DST gaps and repeats follow cron's rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backstream.errors import ConfigError, missing_dependency


class _Croniter(Protocol):
    def get_next(self, ret_type: type[datetime]) -> datetime: ...


def _croniter() -> Any:
    try:
        from croniter import croniter  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise missing_dependency("croniter", "schedule") from exc
    return croniter


def _six_fields(expression: str) -> bool:
    return len(expression.split()) == 6


def zone(name: str) -> tzinfo:
    """The IANA time zone ``name`` (``Europe/Berlin``, ``UTC``); an unknown one is a ValueError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as UTC or Europe/Berlin)") from exc


@dataclass(frozen=True)
class CronSchedule:
    """A cron expression in a time zone; ``next_after`` gives the first run strictly after a time."""

    expression: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        croniter = _croniter()
        words = self.expression.split()
        if not words:
            raise ValueError("empty cron expression")
        if not words[0].startswith("@") and len(words) not in (5, 6):
            raise ValueError(f"{self.expression!r} has {len(words)} fields; cron needs 5 (or 6, seconds first)")
        if not croniter.is_valid(self.expression, second_at_beginning=_six_fields(self.expression)):
            raise ValueError(f"{self.expression!r} is not a valid cron expression")
        zone(self.timezone)

    @property
    def tz(self) -> tzinfo:
        return zone(self.timezone)

    def next_after(self, moment: datetime) -> datetime:
        """The first scheduled time after ``moment`` (aware), as an aware UTC-comparable datetime."""
        if moment.tzinfo is None:
            raise ValueError("next_after needs a timezone-aware datetime")
        local = moment.astimezone(self.tz)
        iterator = cast(
            _Croniter,
            _croniter()(self.expression, local, second_at_beginning=_six_fields(self.expression)),
        )
        return iterator.get_next(datetime)


def parse_schedule(expression: str, timezone: str) -> CronSchedule:
    """``CronSchedule(expression, timezone)`` with its problem as a ConfigError (no location)."""
    try:
        return CronSchedule(expression.strip(), timezone)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
