"""``backstream pitr setup postgresql://... --repo URL [--apply]``: WAL archiving settings for a cluster.

Prints archive_mode/archive_command; ``--apply`` sets them with ALTER SYSTEM and reloads (archive_mode needs a restart).
"""

from __future__ import annotations

import argparse


class Pitr:
    """The ``pitr`` command and its ``setup`` action (registered by the postgresql plugin)."""

    help = "set up point-in-time recovery for a PostgreSQL cluster (pitr setup)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        from backstream.cli.options import add_json_argument

        actions = parser.add_subparsers(dest="pitr_action", metavar="ACTION", required=True)
        setup = actions.add_parser("setup", help="print (or --apply) archive_mode and archive_command")
        setup.add_argument("source", metavar="URL", help="postgresql://user@host:port/db of the cluster")
        setup.add_argument("--repo", metavar="URL", help="repository URL (default: $BACKSTREAM_REPO)")
        setup.add_argument(
            "--config", metavar="FILE", help="make archive_command read this wal config file instead of --repo"
        )
        setup.add_argument("--apply", action="store_true", help="ALTER SYSTEM SET ... and reload the configuration")
        setup.add_argument(
            "--no-check",
            action="store_true",
            help="with --apply: do not open the repository from here first (it is reachable only from the server)",
        )
        add_json_argument(setup)

    def run(self, args: argparse.Namespace) -> int:
        from backstream.cli.options import print_json, repo_url
        from backstream.runtime import run_async

        from backstream_plugins.postgresql.setup import check_url, pitr_setup

        repo = args.repo if args.config and not args.repo else repo_url(args)
        result = run_async(
            lambda: pitr_setup(
                check_url(args.source),
                repo or "",
                config_file=args.config,
                apply=args.apply,
                check_repo=not args.no_check,
            )
        )
        if args.json:
            print_json(result.__dict__)
            return 0
        print("# postgresql.conf settings for point-in-time recovery with backstream")
        for name, value in result.settings.items():
            print(f"{name} = '{value.replace(chr(39), chr(39) * 2)}'")
        if result.applied:
            print("# applied with ALTER SYSTEM and reloaded", end="")
            print("; archive_mode/wal_level take effect only after a server RESTART" if result.restart_needed else "")
        else:
            print("# archive_mode (and wal_level) need a server restart; archive_command only a reload")
        return 0
