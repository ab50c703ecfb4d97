"""``backstream cleanup --repo URL [--older-than 1h] [--dry-run]``: remove orphans past a grace period.

Orphans are objects no manifest names, ``.partial`` temp objects and stale locks; a named object is never removed.
"""

from __future__ import annotations

import argparse

from backstream.cli.options import add_json_argument, add_repo_argument, open_repository, print_json, run_async
from backstream.plugins import Plugins
from backstream.repository.check import CleanupAction, cleanup
from backstream.retention import parse_duration

NAME = "cleanup"
HELP = "remove orphaned objects and stale locks older than a grace period"


def configure(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    parser.add_argument(
        "--older-than", default="1h", metavar="DURATION", help="grace period, e.g. 30m, 1h, 2d (default: 1h)"
    )
    parser.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    grace = parse_duration(args.older_than)
    plugins = Plugins.load()

    async def work() -> list[CleanupAction]:
        repository = await open_repository(args, plugins)
        return await cleanup(repository, older_than=grace, dry_run=args.dry_run, archives=plugins.log_archives())

    actions = run_async(work)
    if args.json:
        print_json([vars(a) for a in actions])
        return 0
    for action in actions:
        detail = f" ({action.detail})" if action.detail else ""
        print(f"{action.action}: {action.path}: {action.reason}{detail}")
    removed = sum(1 for a in actions if a.action in ("removed", "would remove"))
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {removed} of {len(actions)} orphans")
    return 0
