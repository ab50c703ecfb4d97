"""``backstream daemon --config FILE``: run the schedule file's jobs until SIGTERM.

SIGHUP reloads the file (a bad one keeps the jobs as they were, and the log says why); SIGTERM or
Ctrl-C stops starting jobs, lets running ones finish within ``shutdown_grace``, then cancels them.
With ``http_address`` (or ``--http-address``) it serves ``/metrics``, ``/health`` and
``/health/live`` there (``backstream.schedule.http``).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import NoReturn

from backstream.cli.schedule_args import add_config_argument, schedule_config
from backstream.errors import ConfigError
from backstream.runtime import run_async
from backstream.schedule import Scheduler
from backstream.schedule.config import parse_address
from backstream.schedule.logline import FORMATS, EventLog

NAME = "daemon"
HELP = "run scheduled jobs (backups, restore drills, checks, prune) from a schedule file"


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument(
        "--log-format", choices=FORMATS, default="text", help="one line per event as key=value text or JSON"
    )
    parser.add_argument(
        "--http-address",
        metavar="HOST:PORT",
        help="serve /metrics and /health here (overrides the file's http_address; port 0 picks one)",
    )
    parser.add_argument("--check-config", action="store_true", help="only validate the schedule file and exit")


def run(args: argparse.Namespace) -> int:
    config = schedule_config(args)
    if args.http_address:
        config = replace(config, http_address=parse_address(args.http_address, _bad_address))
    sink = None
    if config.notifiers:  # their options are checked now, so --check-config covers them too
        from backstream.notify import Notifications, configured_channels
        from backstream.plugins import Plugins

        sink = Notifications(configured_channels(config.notifiers, Plugins.load()), config.state_dir)
    if config.http_address is not None:
        from backstream.schedule.metrics import require_prometheus

        require_prometheus()
    if args.check_config:
        serving = "" if config.http_address is None else ", serving {}:{}".format(*config.http_address)
        print(f"{config.path}: {len(config.jobs)} job(s), state in {config.state_dir}{serving}")
        return 0
    scheduler = Scheduler(config, event_log=EventLog(args.log_format), sink=sink)
    run_async(lambda: scheduler.run(handle_signals=True))
    return 0


def _bad_address(problem: str) -> NoReturn:
    raise ConfigError(f"--http-address {problem}")
