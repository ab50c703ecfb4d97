"""``backstream stats --repo URL``: backup count, success rate, sizes and the newest good backup.

Computed from the manifests and the records of failed attempts; each log archive is a line of its
own (files, size as produced and as stored, read from its records) with the recovery window it gives.
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
from backstream.repository.archive_stats import ArchiveStats, archive_stats

NAME = "stats"
HELP = "show repository statistics"


def configure(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    plugins = Plugins.load()

    async def work() -> tuple[str, RepositoryStats, list[ArchiveStats]]:
        repository = await open_repository(args, plugins)
        return repository.url, await repository.stats(), await archive_stats(repository, plugins.log_archives())

    url, stats, archives = run_async(work)
    if args.json:
        print_json({"repository": url, **stats.to_dict(), "archives": [a.to_dict() for a in archives]})
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
    for archive in archives:  # not part of "data" above: that is the backups' alone
        unreadable = f", {archive.unreadable} unreadable records (see: backstream check)" if archive.unreadable else ""
        lines.append(
            f"{archive.name + ' archive':<14} {archive.files} files, {human_bytes(archive.plaintext_size)}"
            f" -> {human_bytes(archive.stored_size)} stored{unreadable}"
        )
        if archive.window is not None:
            window = archive.window
            detail = f" ({window.detail})" if window.detail else ""
            lines.append(f"{'':<15}recoverable from {format_time(window.start)} to {format_time(window.end)}{detail}")
    print("\n".join(lines))
    return 0
