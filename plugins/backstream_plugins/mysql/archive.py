"""The ``binlog`` log archive (a ``LogArchive``): MySQL/MariaDB binlogs under ``binlog/<server-id>/``,
as ``check``, ``cleanup``, ``prune`` and ``stats`` see them.

Files get in through ``binlog-archive``; the window runs from the oldest backup with binlog
coordinates whose binlogs are archived to the last event of the newest archived binlog.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence

import anyio.to_thread
from backstream import ConfigError, Plugins, RecoveryWindow
from backstream.jobs import KeyOptions
from backstream.repository import Manifest, Repository
from backstream.repository.check import ArchivedFile, Problem
from backstream.retention import ArchiveDecision

from backstream_plugins.mysql.binlog.archive import archived_records
from backstream_plugins.mysql.binlog.layout import BINLOG_PREFIX, BinlogRecord, binlog_sequence, encryption_context
from backstream_plugins.mysql.binlog.prune import prune_binlogs, recovery_start
from backstream_plugins.mysql.binlog.replay import fetch


class BinlogArchive:
    """MySQL/MariaDB's binlog archive in a repository, one folder per server id."""

    name = "binlog"
    prefix = BINLOG_PREFIX

    def parse_record(self, data: bytes, where: str, repository_id: str) -> ArchivedFile:
        record = BinlogRecord.from_json(data, where=where)
        return ArchivedFile(
            record=record.object,
            context=encryption_context(repository_id, record.server_id, record.name, record.object.codec),
            plaintext_sha256=record.plaintext_sha256,
        )

    async def holes(self, repository: Repository, manifests: Sequence[Manifest]) -> list[Problem]:
        """Not checked: a binlog's successor is named only once the server rotates, so a gap in the
        sequence is not told apart from a file still to be archived (replay names the one it lacks)."""
        return []

    async def window(self, repository: Repository, manifests: Sequence[Manifest]) -> RecoveryWindow | None:
        """From the oldest backup whose starting binlog is archived to the newest archived event of its server."""
        cache: dict[int, dict[str, BinlogRecord]] = {}
        for manifest in manifests:  # oldest first
            start = recovery_start(manifest)
            if start is None:
                continue
            server_id, first = start
            if server_id not in cache:
                cache[server_id] = await archived_records(repository, server_id)
            records = cache[server_id]
            if first not in records:
                continue
            try:
                base, _ = binlog_sequence(first)
            except ConfigError:
                continue
            same = [record for name, record in records.items() if name.startswith(base + ".")]
            newest = max(same, key=lambda record: binlog_sequence(record.name)[1])
            end = newest.last_event or newest.archived_at
            return RecoveryWindow(
                start=manifest.finished_at,
                end=end,
                detail=f"backup {manifest.backup_id}, server {server_id} binlogs to {newest.name}",
            )
        return None

    async def prune(
        self, repository: Repository, kept: Sequence[Manifest], *, dry_run: bool
    ) -> list[tuple[str, ArchiveDecision]]:
        decisions = await prune_binlogs(repository, kept, dry_run=dry_run, lock=False)
        return [(f"binlog {item.server_id}", item.decision) for item in decisions]

    async def fetch(
        self, repository: Repository, name: str, path: str, *, plugins: Plugins, keys: KeyOptions | None = None
    ) -> None:
        """``name``: ``<server-id>/<binlog file>``, e.g. ``1/mariadb-bin.000042``."""
        server, _, file = name.partition("/")
        try:
            server_id = int(server)
        except ValueError:
            raise ConfigError(f"{name!r} does not name an archived binlog (expected SERVER-ID/FILE)") from None
        records = await archived_records(repository, server_id)
        if file not in records:
            raise ConfigError(f"{file} of server {server_id} is not in the binlog archive of {repository.url}")
        workdir = await anyio.to_thread.run_sync(_temporary_dir, path)
        try:
            local = await fetch(plugins, repository, records[file], workdir, keys or KeyOptions())
            await anyio.to_thread.run_sync(_move, local, path)
        finally:
            await anyio.to_thread.run_sync(_remove_dir, workdir)


def _temporary_dir(path: str) -> str:
    return tempfile.mkdtemp(prefix=".backstream-binlog-", dir=os.path.dirname(os.path.abspath(path)))


def _move(source: str, target: str) -> None:
    os.replace(source, target)


def _remove_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
