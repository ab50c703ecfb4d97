"""``backstream check --repo URL [--read-data]``: every manifest parses, every object exists with its
recorded size and sha256, and so does every file of the log archives (``LogArchive`` plugins), with
the files an archive lacks that backups need; ``--read-data`` also decrypts and decompresses each
object end to end.

Reports orphans (objects no manifest names, ``.partial`` temp objects, stale locks); exits 1 on any problem.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from backstream.cli.crypto_args import add_key_options, audit_log, provider_options
from backstream.cli.options import add_json_argument, add_repo_argument, open_repository, print_json, run_async
from backstream.cli.progress_display import add_progress_arguments, progress_display, quiet
from backstream.jobs import KeyOptions
from backstream.plugins import Plugins
from backstream.protocols import LogArchive
from backstream.repository import Manifest, ObjectRecord, Repository
from backstream.repository.archive_stats import archive_stats
from backstream.repository.check import ArchivedFile, CheckReport, check_repository
from backstream.verify.drill import read_object, read_stored

NAME = "check"
HELP = "check the repository's manifests and objects (sizes, hashes; --read-data: decrypt and decompress)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_repo_argument(parser)
    parser.add_argument(
        "--read-data", action="store_true", help="also decrypt and decompress every object (needs the keys)"
    )
    add_json_argument(parser)
    add_progress_arguments(parser)
    add_key_options(parser)


def run(args: argparse.Namespace) -> int:
    plugins = Plugins.load()
    keys = KeyOptions(provider_options=provider_options(args), audit=audit_log(args))
    progress = progress_display("check", args)
    archives = plugins.log_archives()

    async def work() -> CheckReport:
        repository = await open_repository(args, plugins)
        if progress.enabled:
            progress.expect(await _stored_total(repository, archives))

        async def read(manifest: Manifest, record: ObjectRecord) -> None:
            await read_object(plugins, repository, manifest, record, keys)

        async def read_archived(archived: ArchivedFile) -> None:
            await read_stored(
                plugins, repository, archived.record, archived.context, keys, archived.plaintext_sha256, "record"
            )

        report = await check_repository(
            repository,
            read_data=read if args.read_data else None,
            archives=archives,
            read_archived=read_archived if args.read_data else None,
            progress=progress,
        )
        good = [m for m in await repository.manifests() if m.ok]
        for archive in archives:
            report.problems += await archive.holes(repository, good)
        return report

    try:
        report = run_async(work)
    finally:
        progress.close()
    if args.json:
        print_json(report.to_dict())
    else:
        print_report(report, summary=not quiet(args))
    return 0 if report.ok else 1


async def _stored_total(repository: Repository, archives: Sequence[LogArchive]) -> int:
    """What the check will read: every good backup's objects and every archived file, stored."""
    backups = sum(manifest.stored_size for manifest in await repository.manifests())
    archived = sum(stats.stored_size for stats in await archive_stats(repository, archives))
    return backups + archived


def print_report(report: CheckReport, *, summary: bool = True) -> None:
    """Problems and orphans, one line each; with ``summary``, notes and the closing line too."""
    for problem in report.problems:
        print(f"PROBLEM {problem.kind}: {problem.path}: {problem.detail}")
    for orphan in report.orphans:
        print(f"ORPHAN  {orphan.path}: {orphan.reason}")
    for backup_id in report.in_progress:
        print(f"running {backup_id}: a backup in progress (not checked)")
    if report.orphans:
        print("remove orphans with: backstream cleanup --repo URL", file=sys.stderr)
    if not summary:
        return
    for note in report.notes:
        print(f"note    {note}")
    print(report.summary())
