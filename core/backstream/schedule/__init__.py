"""Unattended operation: the schedule file, the scheduler the ``daemon`` command runs, the run
history and the status it reports (docs/scheduling.md).

Cron times come from croniter (``pip install 'backstream[schedule]'``), imported when a schedule
is first parsed.
"""

from backstream.schedule.config import JobSpec, RetryPolicy, ScheduleConfig, load_config, parse_config
from backstream.schedule.config import load_config as load_schedule
from backstream.schedule.history import History, RunRecord
from backstream.schedule.notify import EventSink, NotifyPolicy
from backstream.schedule.scheduler import Scheduler

__all__ = [
    "EventSink",
    "History",
    "JobSpec",
    "NotifyPolicy",
    "RetryPolicy",
    "RunRecord",
    "ScheduleConfig",
    "Scheduler",
    "load_config",
    "load_schedule",
    "parse_config",
]
