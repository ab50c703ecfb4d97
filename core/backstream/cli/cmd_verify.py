"""``backstream verify ID|latest --repo URL [--level LEVEL] [--scratch URL|DIR]``: a restore drill.

Restores into a scratch target (a PostgreSQL physical backup: a scratch directory and a throwaway
server), runs the checks, measures the restore, drops the scratch and records the result under
``backups/<id>/drills/``; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse

from backstream.cli.crypto_args import add_key_options, audit_log, provider_options
from backstream.cli.options import (
    add_json_argument,
    add_repo_argument,
    print_json,
    repo_url,
    run_async,
    storage_options,
)
from backstream.jobs import KeyOptions
from backstream.plugins import Plugins
from backstream.repository import Manifest
from backstream.verify.drill import DrillResult, run_drill, verify_target
from backstream.verify.report import LEVELS, Report

NAME = "verify"
HELP = "restore a backup into a scratch target, check it, and record the drill"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backup", metavar="ID|latest", help="a backup id (or unique prefix), or latest")
    add_repo_argument(parser)
    parser.add_argument("--level", choices=LEVELS, default="standard", help="how much to check (default: standard)")
    parser.add_argument(
        "--scratch",
        metavar="URL|DIR",
        help="server for the scratch database, with credentials (default: the backup's source server); "
        "for a PostgreSQL physical backup, the directory to restore and run it in (default: $TMPDIR)",
    )
    parser.add_argument("--no-record", action="store_true", help="do not record the drill in the repository")
    add_json_argument(parser)
    add_key_options(parser)


def run(args: argparse.Namespace) -> int:
    url = repo_url(args)
    plugins = Plugins.load()

    async def work() -> DrillResult:
        return await run_drill(
            args.backup,
            repo=url,
            level=args.level,
            scratch=args.scratch,
            plugins=plugins,
            keys=KeyOptions(provider_options=provider_options(args), audit=audit_log(args)),
            storage_options=storage_options(args),
            record=not args.no_record,
        )

    result = run_async(work)
    if args.json:
        print_json(result.to_dict())
    else:
        print(f"drill of {result.manifest.backup_id} ({result.manifest.source.url})")
        print(result.report.table())
    return 0 if result.report.ok else 1


def verify_restored(plugins: Plugins, manifest: Manifest, target: str, level: str) -> Report:
    """``restore --verify LEVEL``: check the restored ``target`` against the backup's catalog."""

    async def work() -> Report:
        return Report(level, tuple(await verify_target(plugins, manifest, target, level)))

    return run_async(work)
