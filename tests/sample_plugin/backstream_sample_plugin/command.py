"""``backstream samplekv-archive FILE --repo URL``: archive one closed journal file (a ``Command``),
and ``backstream backup samplekv:///dir --kv-strip-comments`` (``CommandOptions`` for ``backup``).

Only argparse is imported at the top: the work is imported by ``run``, so ``backstream --help``
stays fast however many plugins add commands.
"""

from __future__ import annotations

import argparse
import os

STRIP_COMMENTS = "strip_comments=true"


class ArchiveJournal:
    """The ``samplekv-archive`` command."""

    help = "archive one closed samplekv journal file into a repository (the sample plugin)"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        from backstream import DEFAULT_COMPRESSION

        parser.add_argument("file", metavar="FILE", help="a closed journal file, e.g. /srv/kv/journal/000042.log")
        parser.add_argument(
            "--repo", default=os.environ.get("BACKSTREAM_REPO"), help="repository URL ($BACKSTREAM_REPO)"
        )
        parser.add_argument(
            "--compress",
            metavar="CODEC[:LEVEL]",
            default=DEFAULT_COMPRESSION,
            help=f"compressor (default {DEFAULT_COMPRESSION})",
        )

    def run(self, args: argparse.Namespace) -> int:
        from backstream import ConfigError, Plugins, run_async
        from backstream.repository import Repository

        from backstream_sample_plugin.archive import JournalRecord, push_journal

        if not args.repo:
            raise ConfigError("no repository given: pass --repo URL or set BACKSTREAM_REPO")
        plugins = Plugins.load()

        async def work() -> JournalRecord | None:
            repository = await Repository.open(plugins.open_storage(args.repo))
            return await push_journal(plugins, repository, args.file, compress=args.compress)

        record = run_async(work)
        name = os.path.basename(args.file)
        print(
            f"{name} is already archived" if record is None else f"archived {name} ({record.object.stored_size} bytes)"
        )
        return 0


class BackupOptions:
    """``--kv-strip-comments`` for ``backup``: the samplekv source's ``strip_comments`` option, as a flag."""

    extends = "backup"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--kv-strip-comments",
            dest="option",  # backup's -o KEY=VALUE list: the source's options
            action="append_const",
            const=STRIP_COMMENTS,
            help="samplekv: leave the store's # comment lines out of the backup",
        )

    def check(self, args: argparse.Namespace) -> None:
        from backstream import ConfigError

        if STRIP_COMMENTS in args.option and not args.source.startswith("samplekv:"):
            raise ConfigError("--kv-strip-comments applies to samplekv:// sources only")
