"""``backstream show ID|latest --repo URL``: one backup's manifest, readable or (``--json``) as stored.

Shows the objects with their sizes, hashes, codec, cipher and key references, and the source metadata.
"""

from __future__ import annotations

import argparse
from typing import Any

from backstream.cli.options import (
    add_json_argument,
    add_repo_argument,
    human_bytes,
    open_repository,
    print_json,
    run_async,
)
from backstream.plugins import Plugins
from backstream.repository import Manifest, format_time
from backstream.verify.drill import describe_drill, latest_drills

NAME = "show"
HELP = "show one backup's manifest"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backup", metavar="ID|latest", help="a backup id (or unique prefix), or latest")
    add_repo_argument(parser)
    add_json_argument(parser)


def run(args: argparse.Namespace) -> int:
    plugins = Plugins.load()

    async def work() -> tuple[Manifest, dict[str, Any] | None]:
        repository = await open_repository(args, plugins)
        manifest = await repository.resolve(args.backup)
        return manifest, (await latest_drills(repository)).get(manifest.backup_id)

    manifest, drill = run_async(work)
    if args.json:
        print_json(manifest.to_dict())
        return 0
    source = manifest.source
    lines = [
        f"backup       {manifest.backup_id}",
        f"status       {manifest.status}",
        f"source       {source.url} ({source.kind}{', ' + source.server_version if source.server_version else ''})",
        f"started      {format_time(manifest.started_at)}",
        f"finished     {format_time(manifest.finished_at)} ({manifest.duration_seconds:.1f}s)",
        f"size         {human_bytes(manifest.plaintext_size)} -> {human_bytes(manifest.stored_size)} stored",
        f"host         {manifest.host}",
        f"tool         backstream {manifest.tool_version}",
        f"verified     {describe_drill(drill)}",
    ]
    if manifest.parent:
        lines.append(f"parent       {manifest.parent}")
    for obj in manifest.objects:
        encryption = f", {obj.cipher} to {', '.join(obj.key_refs)}" if obj.cipher else ""
        lines.append(f"object       {obj.path}")
        lines.append(f"             {obj.stored_size} bytes, sha256 {obj.stored_sha256}")
        lines.append(f"             {obj.plaintext_size} bytes plaintext, {obj.codec}{encryption}")
        if obj.stage_seconds:
            stages = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in obj.stage_seconds.items())
            lines.append(f"             stages busy: {stages}")
    for key, value in sorted(source.metadata.items()):
        lines.append(f"metadata     {key}: {value}")
    print("\n".join(lines))
    return 0
