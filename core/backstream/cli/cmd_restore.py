"""``backstream restore ID|latest --repo URL --to TARGET``: stream a backup back into a database.

The target is left untouched if anything fails (integrity, decryption, the restore itself).
"""

from __future__ import annotations

import argparse

from backstream.cli.cmd_verify import verify_restored
from backstream.cli.crypto_args import add_key_options, audit_log, provider_options
from backstream.cli.options import (
    add_json_argument,
    add_repo_argument,
    key_values,
    print_json,
    repo_url,
    run_async,
    storage_options,
)
from backstream.cli.progress_display import add_progress_arguments, progress_display, quiet
from backstream.errors import ConfigError
from backstream.jobs import KeyOptions, restore
from backstream.pitr.restore_cli import add_pitr_arguments
from backstream.plugins import Plugins
from backstream.repository import Manifest, redact_url

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
    add_pitr_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "to_dir", None):  # PostgreSQL physical backup + WAL (backstream.pitr)
        from backstream.pitr.restore_cli import run_to_dir

        return run_to_dir(args)
    if not args.to:
        raise ConfigError("say where to restore: --to TARGET (a database URL) or --to-dir DATADIR (PostgreSQL)")
    if getattr(args, "tablespace_map", None):
        raise ConfigError("--tablespace-map applies to physical restores only (--to-dir DATADIR)")
    if args.target_time and not getattr(args, "to_dir", None):  # MySQL/MariaDB and SQLite (backstream.binlog)
        from backstream.binlog.cli_restore import run_target_time

        return run_target_time(args)
    url = repo_url(args)
    options = key_values(args.option, "target option")
    if args.jobs is not None:
        options["jobs"] = str(args.jobs)
    progress = progress_display("restore", args)
    plugins = Plugins.load()

    async def work() -> Manifest:
        return await restore(
            args.backup,
            repo=url,
            to=args.to,
            force=args.force,
            source=args.source,
            options=options,
            plugins=plugins,
            progress=progress,
            storage_options=storage_options(args),
            keys=KeyOptions(provider_options=provider_options(args), audit=audit_log(args)),
        )

    try:
        manifest = run_async(work)
    finally:
        progress.close()
    target = redact_url(args.to)
    report = verify_restored(plugins, manifest, args.to, args.verify) if args.verify else None
    if args.json:
        document = {"backup_id": manifest.backup_id, "target": target, "plaintext_size": manifest.plaintext_size}
        print_json({**document, "verification": report.to_dict()} if report else document)
    else:
        if not quiet(args):
            print(f"restored {manifest.backup_id} to {target}")
        if report and not (quiet(args) and report.ok):
            print(report.table())
    return 1 if report and not report.ok else 0
