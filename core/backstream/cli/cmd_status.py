"""``backstream status [--config FILE] [--json] [--check]``: per job, the last success and failure,
the next run, the age of the newest good backup and the log archives' lag.

``--check`` prints one Nagios plugin line (``BACKSTREAM OK - ... | perfdata``) and exits 0 (OK),
1 (WARNING: older than ``warn_age``), 2 (CRITICAL: older than ``max_age``) or 3 (UNKNOWN).
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta

from backstream.cli.options import add_json_argument, print_json
from backstream.cli.schedule_args import add_config_argument, schedule_config
from backstream.errors import BackstreamError
from backstream.plugins import Plugins
from backstream.repository import format_time
from backstream.retention import format_duration
from backstream.runtime import run_async
from backstream.schedule.history import RunRecord
from backstream.schedule.status import UNKNOWN, JobStatus, job_statuses, nagios

NAME = "status"
HELP = "show each scheduled job's last runs, next run and backup freshness (--check: Nagios)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    add_json_argument(parser)
    parser.add_argument(
        "--check",
        action="store_true",
        help="one Nagios plugin line; exit 0 OK, 1 WARNING, 2 CRITICAL (older than max_age), 3 UNKNOWN",
    )


def run(args: argparse.Namespace) -> int:
    if args.check:
        try:
            config = schedule_config(args)
            code, line = nagios(run_async(lambda: job_statuses(config, plugins=Plugins.load())))
        except BackstreamError as exc:
            code, line = UNKNOWN, f"BACKSTREAM UNKNOWN - {exc}"
        print(line)
        return code
    config = schedule_config(args)
    statuses = run_async(lambda: job_statuses(config, plugins=Plugins.load()))
    if args.json:
        print_json({"state_dir": str(config.state_dir), "jobs": [status.to_dict() for status in statuses]})
        return 0
    print("\n\n".join(describe(status) for status in statuses) or f"no jobs in {config.path}")
    return 0


def describe(status: JobStatus) -> str:
    job = status.job
    now = status.now
    lines = [f"{job.name} ({job.kind}, {job.schedule.expression!r} {job.schedule.timezone})"]
    lines.append(f"  last success  {_run(status.last_success, now)}")
    lines.append(f"  last failure  {_run(status.last_failure, now)}")
    lines.append(f"  next run      {format_time(status.next_run)} (in {_ago(status.next_run - now)})")
    moment, what = status.freshness
    limit = "" if job.max_age is None else f"; max_age {format_duration(job.max_age)}"
    if status.repository_error:
        lines.append(f"  repository    unreadable: {status.repository_error}")
    if job.kind == "backup":
        if status.newest is None:
            lines.append(f"  newest good   none{limit}")
        else:
            age = _ago(now - status.newest.finished_at)
            lines.append(f"  newest good   {status.newest.backup_id} ({age} old{limit})")
    elif moment is not None and job.max_age is not None:
        lines.append(f"  freshness     {what} {_ago(now - moment)} ago{limit}")
    for name, lag in sorted(status.archive_lag().items()):
        lines.append(f"  {name + ' lag':<13} {_ago(lag)}")
    return "\n".join(lines)


def _run(record: RunRecord | None, now: datetime) -> str:
    if record is None:
        return "never"
    text = f"{format_time(record.finished_at)} ({_ago(now - record.finished_at)} ago)"
    if record.backup_id:
        text += f" backup {record.backup_id}"
    if record.error:
        text += f": {record.error}"
    return text


def _ago(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    return format_duration(timedelta(seconds=seconds)) if seconds else "0s"
