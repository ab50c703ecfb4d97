"""``--config FILE``, shared by ``daemon``, ``trigger`` and ``status``: the schedule file."""

from __future__ import annotations

import argparse

from backstream.schedule.config import CONFIG_ENV, ScheduleConfig, default_config_path, load_config


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"the schedule file (default: ${CONFIG_ENV}, else {default_config_path()})",
    )


def schedule_config(args: argparse.Namespace) -> ScheduleConfig:
    """The schedule file named by ``--config`` (or the default), validated."""
    return load_config(args.config or default_config_path())
