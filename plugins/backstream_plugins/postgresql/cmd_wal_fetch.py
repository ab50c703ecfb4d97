"""``backstream wal-fetch %f %p``: PostgreSQL's restore_command; copies one archived WAL file to ``%p``.

Exit 1 means "not archived" (PostgreSQL's end of archive); any other failure exits 255 so recovery stops.
"""

from __future__ import annotations

import argparse
import sys

NOT_FOUND_EXIT = 1
FAILURE_EXIT = 255
"""PostgreSQL aborts recovery when restore_command exits above 125, instead of taking it as the end of WAL."""


class WalFetch:
    """The ``wal-fetch`` command (registered by the postgresql plugin)."""

    help = "restore one archived WAL file (restore_command = 'backstream wal-fetch %f %p')"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", metavar="NAME", help="the WAL file name PostgreSQL asks for (%%f)")
        parser.add_argument("path", metavar="PATH", help="where to write it (%%p)")
        parser.add_argument(
            "--repo", metavar="URL", help="repository URL (default: $BACKSTREAM_REPO or the config file)"
        )
        parser.add_argument("--config", metavar="FILE", help="a TOML config file (default: $BACKSTREAM_CONFIG)")

    def run(self, args: argparse.Namespace) -> int:
        from backstream import BackstreamError

        from backstream_plugins.postgresql.wal import WalNotFound, fetch
        from backstream_plugins.postgresql.walconfig import load_wal_config

        try:
            fetch(load_wal_config(config_file=args.config, repo=args.repo), args.name, args.path)
        except WalNotFound as exc:
            print(f"backstream: {exc}", file=sys.stderr)
            return NOT_FOUND_EXIT
        except BackstreamError as exc:
            print(f"backstream: error: {exc}", file=sys.stderr)
            return FAILURE_EXIT
        return 0
