"""``backstream list --repo URL``: the committed backups, oldest first (read from their manifests).

``--json`` prints a list of objects, one per backup.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from backstream.cli.cmd_backup import summary
from backstream.cli.options import (
    add_json_argument,
    add_repo_argument,
    human_bytes,
    open_repository,
    print_json,
    run_async,
)
from backstream.plugins import Plugins
from backstream.repository import Manifest, redact_url
from backstream.verify.drill import describe_drill, drill_brief, latest_drills

NAME = "list"
HELP = "list the backups in the repository"


def configure(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    parser.add_argument("--source", metavar="URL", help="only backups of this source")
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    plugins = Plugins.load()

    async def work() -> tuple[list[Manifest], dict[str, dict[str, Any]]]:
        repository = await open_repository(args, plugins)
        return await repository.manifests(), await latest_drills(repository)

    manifests, drills = run_async(work)
    if args.source:
        wanted = redact_url(args.source)
        manifests = [m for m in manifests if m.source.url == wanted]
    if args.json:
        print_json([{**summary(m), "last_verified": drill_brief(drills.get(m.backup_id))} for m in manifests])
        return 0
    headers = ("ID", "FINISHED (UTC)", "SIZE", "STORED", "CODEC", "ENC", "LAST VERIFIED", "SOURCE")
    rows = [
        (
            m.backup_id,
            m.finished_at.strftime("%Y-%m-%d %H:%M:%S"),
            human_bytes(m.plaintext_size),
            human_bytes(m.stored_size),
            ",".join(sorted({obj.codec for obj in m.objects})),
            "yes" if m.encrypted else "no",
            describe_drill(drills.get(m.backup_id)),
            m.source.url,
        )
        for m in manifests
    ]
    print_table(headers, rows)
    return 0


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Left-aligned columns; the last column is not padded."""
    table = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers) - 1)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
