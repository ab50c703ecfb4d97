"""``backstream verify-pitr postgresql://... --repo URL``: prove WAL archiving works and report the recoverable window.

Forces a WAL segment switch, waits until that segment is in the repository, checks that the archive
holds every segment the base backups need up to it, then prints the window. Exit status 1 when a
segment is missing or there is no base backup to recover from.
"""

from __future__ import annotations

import argparse
import sys


class VerifyPitr:
    """The ``verify-pitr`` command (registered by the postgresql plugin)."""

    help = "check WAL archiving end to end and report the point-in-time recovery window"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        from backstream.cli.options import add_json_argument, add_repo_argument

        parser.add_argument("source", metavar="URL", help="postgresql://user@host:port/db of the archiving cluster")
        add_repo_argument(parser)
        parser.add_argument(
            "--timeout", type=float, default=60.0, metavar="SECONDS", help="wait this long (default 60)"
        )
        add_json_argument(parser)

    def run(self, args: argparse.Namespace) -> int:
        from backstream.cli.options import print_json, repo_url, storage_options
        from backstream.runtime import run_async

        from backstream_plugins.postgresql.setup import check_url, verify_pitr

        url = check_url(args.source)
        window = run_async(
            lambda: verify_pitr(url, repo_url(args), timeout=args.timeout, storage_options=storage_options(args))
        )
        if args.json:
            print_json({**window.__dict__, "complete": window.complete})
        else:
            print(f"archiving works: {window.segment} reached the repository in {window.waited_seconds:.1f} s")
            print(window.describe())
        problem = window.problem()
        if problem is None:
            return 0
        print(f"backstream: error: point-in-time recovery is not assured: {problem}", file=sys.stderr)
        return 1
