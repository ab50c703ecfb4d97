"""``backstream binlog-archive mysql://... --repo URL [--follow]``: archive closed MySQL/MariaDB binlogs.

Each closed binlog goes to ``binlog/<server-id>/`` compressed (and encrypted with ``--encrypt``); re-runs skip
files already archived; ``--follow`` polls until interrupted (or ``--max-rounds``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


class BinlogArchive:
    """The ``binlog-archive`` command (registered by the mysql plugin)."""

    help = "archive closed MySQL/MariaDB binlogs into the repository (for point-in-time restore)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        from backstream.cli.crypto_args import add_key_options
        from backstream.cli.options import add_json_argument, add_repo_argument
        from backstream.defaults import DEFAULT_CIPHER, DEFAULT_COMPRESSION

        parser.add_argument("source", metavar="SOURCE", help="mysql://user[:password]@host[:port][/db] of the server")
        add_repo_argument(parser)
        parser.add_argument(
            "--compress",
            metavar="CODEC[:LEVEL]",
            default=DEFAULT_COMPRESSION,
            help=f"compressor (default {DEFAULT_COMPRESSION})",
        )
        parser.add_argument(
            "--encrypt", metavar="KEYREF", nargs="+", action="extend", default=[], help="encrypt to these keys"
        )
        parser.add_argument("--cipher", default=DEFAULT_CIPHER, help=f"cipher suite (default {DEFAULT_CIPHER})")
        parser.add_argument(
            "--binlog-dir", metavar="DIR", help="read the binlog files from this directory (the server's datadir)"
        )
        parser.add_argument("--follow", action="store_true", help="keep archiving every --interval seconds")
        parser.add_argument("--interval", type=float, default=60.0, metavar="SECONDS", help="polling interval (60)")
        parser.add_argument("--max-rounds", type=int, metavar="N", help="with --follow: stop after N rounds")
        add_json_argument(parser)
        add_key_options(parser, kdf=True)

    def run(self, args: argparse.Namespace) -> int:
        from backstream.cli.crypto_args import audit_log, provider_options
        from backstream.cli.options import print_json, repo_url, storage_options
        from backstream.jobs import KeyOptions
        from backstream.plugins import Plugins
        from backstream.runtime import run_async

        from backstream_plugins.mysql.binlog import ArchiveResult, archive_binlogs, follow_binlogs

        url = repo_url(args)
        plugins = Plugins.load()
        options: dict[str, Any] = {
            "repo": url,
            "compress": args.compress,
            "encrypt": args.encrypt,
            "binlog_dir": args.binlog_dir,
            "plugins": plugins,
            "storage_options": storage_options(args),
            "keys": KeyOptions(cipher=args.cipher, provider_options=provider_options(args), audit=audit_log(args)),
        }

        def report(result: ArchiveResult) -> None:
            if args.json:
                print_json(result.to_dict())
            else:
                for record in result.archived:
                    print(f"archived {record.name} (server {result.server_id})")
                if not result.archived:
                    print(f"nothing new to archive (server {result.server_id}, current binlog {result.current})")
            sys.stdout.flush()

        if args.follow:

            async def follow() -> int:
                return await follow_binlogs(
                    args.source, interval=args.interval, max_rounds=args.max_rounds, on_round=report, **options
                )

            run_async(follow)
            return 0

        async def once() -> ArchiveResult:
            return await archive_binlogs(args.source, **options)

        report(run_async(once))
        return 0
