"""``backstream trigger JOB --config FILE [--wait]``: run one job of the schedule now.

Queues a trigger file in the state directory; the daemon picks it up within ``trigger_poll``
seconds and runs the job once, as soon as the job and its repository are free.
"""

from __future__ import annotations

import argparse
import sys
import time

from backstream.cli.options import add_json_argument, print_json
from backstream.cli.schedule_args import add_config_argument, schedule_config
from backstream.errors import BackstreamError, ConfigError
from backstream.schedule.history import History, RunRecord
from backstream.schedule.scheduler import daemon_pid
from backstream.schedule.triggers import request

NAME = "trigger"
HELP = "run a scheduled job now (through the running daemon)"
POLL = 0.25


class TriggerTimeout(BackstreamError):
    """The run did not end within --wait seconds."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", metavar="JOB", help="the job's name in the schedule file")
    add_config_argument(parser)
    parser.add_argument(
        "--wait",
        nargs="?",
        type=float,
        const=3600.0,
        metavar="SECONDS",
        help="wait for the run to end (at most SECONDS, default 3600) and exit 1 unless it succeeded",
    )
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    config = schedule_config(args)
    if args.job not in config.jobs:
        raise ConfigError(f"no job named {args.job!r} in {config.path} (jobs: {', '.join(config.jobs) or 'none'})")
    trigger = request(config.state_dir, args.job)
    if daemon_pid(config.state_dir) is None:
        print(
            f"backstream: warning: no daemon runs on {config.state_dir}; the job runs when one starts",
            file=sys.stderr,
        )
    if args.wait is None:
        if args.json:
            print_json({"job": args.job, "trigger_id": trigger.trigger_id, "queued": True})
        else:
            print(f"queued {args.job} (trigger {trigger.trigger_id})")
        return 0
    record = _wait(History(config.state_dir), trigger.trigger_id, args.wait)
    if args.json:
        print_json(record.to_dict())
    else:
        what = f" backup {record.backup_id}" if record.backup_id else ""
        error = f": {record.error}" if record.error else ""
        print(f"{record.job}: {record.status}{what} in {record.duration_seconds:.1f} s{error}")
    return 0 if record.ok else 1


def _wait(history: History, trigger_id: str, seconds: float) -> RunRecord:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for record in history.records():
            if record.trigger_id == trigger_id and record.final:
                return record
        time.sleep(POLL)
    raise TriggerTimeout(f"trigger {trigger_id} did not end within {seconds:g} s (it may still run)")
