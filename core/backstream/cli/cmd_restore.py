"""``backstream restore ID|latest --repo URL --to TARGET``: stream a backup back into a database.

The target is left untouched if anything fails (integrity, decryption, the restore itself).
"""

from __future__ import annotations

import argparse
import os

from backstream.cli.cmd_verify import verify_restored
from backstream.cli.crypto_args import add_key_options, audit_log, provider_options
from backstream.cli.options import (
    REPO_ENV,
    add_json_argument,
    add_repo_argument,
    key_values,
    print_json,
    run_async,
    storage_options,
)
from backstream.cli.progress_display import add_progress_arguments, progress_display, quiet
from backstream.jobs import KeyOptions, restore_request
from backstream.plugins import Plugins
from backstream.protocols import RestoreOutcome, RestoreRequest

NAME = "restore"
HELP = "restore a backup into a database"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backup", metavar="ID|latest", help="a backup id (or unique prefix), or latest")
    add_repo_argument(parser)
    parser.add_argument("--to", metavar="TARGET", help="sqlite:///abs/path.db, postgresql://..., ... (or --to-dir)")
    parser.add_argument("--force", action="store_true", help="replace a target that is not empty")
    parser.add_argument("--source", metavar="URL", help="with latest: the newest backup of this source")
    parser.add_argument("--jobs", type=int, metavar="N", help="parallel restore jobs (pg_restore -j)")
    parser.add_argument(
        "--target-time",
        metavar="TIME",
        help="point-in-time restore to TIME with a UTC offset, e.g. '2026-11-25 14:30:00+00' (MySQL/MariaDB: "
        "dump + archived binlogs; SQLite: the newest backup not after TIME)",
    )
    parser.add_argument(
        "-o", "--option", metavar="KEY=VALUE", action="append", default=[], help="a target plugin option (repeatable)"
    )
    parser.add_argument(
        "--verify",
        choices=("quick", "standard", "comprehensive"),
        metavar="LEVEL",
        help="check the restored database against the backup: quick, standard or comprehensive",
    )
    add_json_argument(parser)
    add_progress_arguments(parser)
    add_key_options(parser)


def run(args: argparse.Namespace) -> int:
    """Restore by the path of the backup's kind (``backstream.jobs.restore_request``): the plain
    restore into ``--to``, or the one a source plugin offers (a data directory, a point in time)."""
    options = key_values(args.option, "target option")
    if args.jobs is not None:
        options["jobs"] = str(args.jobs)
    progress = progress_display("restore", args)
    request = RestoreRequest(
        backup=args.backup,
        repo=args.repo or os.environ.get(REPO_ENV) or "",
        to=args.to,
        target_time=args.target_time,
        force=args.force,
        source=args.source,
        options=options,
        storage_options=storage_options(args),
        extra={key: value for key, value in vars(args).items() if not key.startswith("_")},
        keys=KeyOptions(provider_options=provider_options(args), audit=audit_log(args)),
        progress=progress,
    )
    plugins = Plugins.load()

    async def work() -> RestoreOutcome:
        return await restore_request(request, plugins=plugins)

    try:
        outcome = run_async(work)
    finally:
        progress.close()
    report = None
    if args.verify and outcome.manifest is not None and outcome.verify_target is not None:
        report = verify_restored(plugins, outcome.manifest, outcome.verify_target, args.verify)
    if args.json:
        print_json({**outcome.document, "verification": report.to_dict()} if report else dict(outcome.document))
    else:
        if not quiet(args):
            print(outcome.summary)
        if report and not (quiet(args) and report.ok):
            print(report.table())
    return 1 if report and not report.ok else 0
