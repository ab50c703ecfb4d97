"""The ``restore --target-time`` path of the CLI for database targets (MySQL/MariaDB replay, SQLite).

``cmd_restore`` dispatches here; PostgreSQL physical PITR (``--to-dir``) is handled elsewhere.
"""

from __future__ import annotations

import argparse

from backstream.binlog.restore import TargetTimeResult, parse_target_time, restore_to_time
from backstream.cli.crypto_args import audit_log, provider_options
from backstream.cli.options import ProgressLine, key_values, print_json, repo_url, run_async, storage_options
from backstream.jobs import KeyOptions
from backstream.plugins import Plugins
from backstream.repository import format_time, redact_url


def run_target_time(args: argparse.Namespace) -> int:
    """Restore ``args.to`` to ``args.target_time``; prints what was done (JSON with ``--json``)."""
    url = repo_url(args)
    target_time = parse_target_time(args.target_time)
    options = key_values(args.option, "target option")
    if args.jobs is not None:
        options["jobs"] = str(args.jobs)
    progress = ProgressLine("restore", enabled=not args.json)
    plugins = Plugins.load()

    async def work() -> TargetTimeResult:
        return await restore_to_time(
            args.backup,
            repo=url,
            to=args.to,
            target_time=target_time,
            force=args.force,
            source=args.source,
            options=options,
            plugins=plugins,
            progress=progress,
            storage_options=storage_options(args),
            keys=KeyOptions(provider_options=provider_options(args), audit=audit_log(args)),
        )

    try:
        result = run_async(work)
    finally:
        progress.close()
    target = redact_url(args.to)
    if args.json:
        print_json({**result.to_dict(), "target": target})
    elif result.mode == "binlog-replay":
        print(
            f"restored {result.manifest.backup_id} to {target} and replayed {len(result.replayed)} binlog file(s) "
            f"up to {format_time(result.target_time)}"
        )
    else:
        print(
            f"restored {result.manifest.backup_id} (the newest backup not after {format_time(result.target_time)}) "
            f"to {target}"
        )
    return 0
