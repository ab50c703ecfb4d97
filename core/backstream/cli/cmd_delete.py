"""``backstream delete ID... --repo URL``: remove backups (manifest first, then their objects).

Takes the repository's exclusive lock, so it fails at once while a backup is running.
"""

from __future__ import annotations

import argparse

from backstream.cli.options import add_json_argument, add_repo_argument, open_repository, print_json, run_async
from backstream.errors import ConfigError
from backstream.plugins import Plugins

NAME = "delete"
HELP = "delete backups from the repository"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backups", metavar="ID", nargs="+", help="backup ids (or unique prefixes)")
    add_repo_argument(parser)
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    if "latest" in args.backups:
        raise ConfigError("name the backup ids to delete; 'latest' is not accepted here")
    plugins = Plugins.load()

    async def work() -> list[str]:
        repository = await open_repository(args, plugins)
        ids = [(await repository.resolve(ref)).backup_id for ref in args.backups]
        for backup_id in ids:
            await repository.delete(backup_id)
        return ids

    deleted = run_async(work)
    if args.json:
        print_json({"deleted": deleted})
    else:
        for backup_id in deleted:
            print(f"deleted {backup_id}")
    return 0
