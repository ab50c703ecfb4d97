"""``backstream demo``: the command, registered by the sqlite plugin through ``backstream_register_commands``.

Cheap to import (every command's registration is, since the CLI collects them all at start-up):
the work is in ``backstream_plugins.sqlite.demo``, imported when the command runs.
"""

from __future__ import annotations

import argparse


class Demo:
    """The ``demo`` command."""

    help = "run the main job on a sample SQLite database in ./backstream-demo"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--dir", default="backstream-demo", help="where the demo keeps its files (default: ./backstream-demo)"
        )
        parser.add_argument("--no-encrypt", action="store_true", help="do not encrypt the demo backup")

    def run(self, args: argparse.Namespace) -> int:
        from backstream_plugins.sqlite.demo import run

        return run(args)
