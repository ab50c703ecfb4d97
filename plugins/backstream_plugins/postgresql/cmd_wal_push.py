"""``backstream wal-push %p``: PostgreSQL's archive_command; stores one WAL file in the repository's ``wal/``.

Exits 0 when stored or already archived with identical content, non-zero otherwise (PostgreSQL retries).
"""

from __future__ import annotations

import argparse


class WalPush:
    """The ``wal-push`` command (registered by the postgresql plugin)."""

    help = "archive one PostgreSQL WAL file (archive_command = 'backstream wal-push %p')"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("path", metavar="PATH", help="the WAL file to archive (%%p)")
        parser.add_argument(
            "--repo", metavar="URL", help="repository URL (default: $BACKSTREAM_REPO or the config file)"
        )
        parser.add_argument("--config", metavar="FILE", help="a TOML config file (default: $BACKSTREAM_CONFIG)")
        parser.add_argument(
            "--name", metavar="NAME", help="archive under this WAL file name (default: PATH's base name)"
        )

    def run(self, args: argparse.Namespace) -> int:
        from backstream_plugins.postgresql.wal import push
        from backstream_plugins.postgresql.walconfig import load_wal_config

        push(load_wal_config(config_file=args.config, repo=args.repo), args.path, name=args.name)
        return 0
