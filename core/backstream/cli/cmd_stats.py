"""``backstream stats --repo URL``: backup count, success rate, sizes and the newest good backup.

Computed from the manifests and the records of failed attempts.
"""

from __future__ import annotations

import argparse

from backstream.cli.options import (
    add_json_argument,
    add_repo_argument,
    human_bytes,
    open_repository,
    print_json,
    run_async,
)
from backstream.plugins import Plugins
from backstream.repository import RepositoryStats, format_time

NAME = "stats"
HELP = "show repository statistics"


def configure(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    plugins = Plugins.load()

    async def work() -> tuple[str, RepositoryStats]:
        repository = await open_repository(args, plugins)
        return repository.url, await repository.stats()

    url, stats = run_async(work)
    if args.json:
        print_json({"repository": url, **stats.to_dict()})
        return 0
    rate = "n/a" if stats.success_rate is None else f"{stats.success_rate:.0%}"
    ratio = "n/a" if stats.ratio is None else f"{stats.ratio:.2f}"
    lines = [
        f"repository     {url}",
        f"backups        {stats.backups} ({stats.failed} failed attempts recorded, success rate {rate})",
        f"data           {human_bytes(stats.plaintext_size)} -> {human_bytes(stats.stored_size)} stored"
        f" (ratio {ratio})",
    ]
    if stats.newest is not None:
        lines.append(f"newest good    {stats.newest.backup_id} ({format_time(stats.newest.finished_at)})")
    if stats.oldest is not None:
        lines.append(f"oldest         {stats.oldest.backup_id} ({format_time(stats.oldest.finished_at)})")
    for source, count in sorted(stats.sources.items()):
        lines.append(f"source         {source}: {count}")
    print("\n".join(lines))
    return 0
