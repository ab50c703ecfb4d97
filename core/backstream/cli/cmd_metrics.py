"""``backstream metrics [--config FILE] [--textfile DIR]``: the scheduled jobs' Prometheus metrics.

Without ``--textfile`` the metrics are printed (Prometheus text format); with it they are written
to ``DIR/backstream.prom`` atomically, for node_exporter's textfile collector (run it from cron or
a systemd timer). Metric names: docs/scheduling.md, "Metrics".
"""

from __future__ import annotations

import argparse
import sys

from backstream.cli.schedule_args import add_config_argument, schedule_config
from backstream.runtime import run_async

NAME = "metrics"
HELP = "print or write (--textfile DIR) the scheduled jobs' Prometheus metrics"


def configure(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("--textfile", metavar="DIR", help="write DIR/backstream.prom for node_exporter")


def run(args: argparse.Namespace) -> int:
    from backstream.schedule.history import History
    from backstream.schedule.metrics import registry, write_textfile
    from backstream.schedule.status import job_statuses

    config = schedule_config(args)
    statuses = run_async(lambda: job_statuses(config))
    found = registry(statuses, History(config.state_dir).records())
    if args.textfile:
        write_textfile(args.textfile, found)
        return 0
    from prometheus_client import generate_latest

    sys.stdout.write(generate_latest(found).decode())
    return 0
