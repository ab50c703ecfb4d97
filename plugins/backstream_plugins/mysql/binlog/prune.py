"""Retention of archived binlogs: delete those no kept backup's recovery window needs.

Applies ``backstream.retention.archive_to_keep`` per server id and binlog base name; anything unclear is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from backstream.errors import BackstreamError, ConfigError
from backstream.repository import Manifest, Repository
from backstream.retention import ArchiveDecision, ArchivedFile, RecoveryStart, archive_to_keep

from backstream_plugins.mysql.binlog.archive import archived_records, archived_server_ids
from backstream_plugins.mysql.binlog.layout import binlog_sequence, record_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BinlogDecision:
    """One archived binlog of one server: keep or delete, and why."""

    server_id: int
    decision: ArchiveDecision

    @property
    def name(self) -> str:
        return self.decision.file.name


def recovery_start(manifest: Manifest) -> tuple[int, str] | None:
    """``(server_id, binlog file)`` where a MySQL backup's roll-forward starts, or None."""
    metadata = manifest.source.metadata
    if manifest.source.kind != "mysql" or not metadata.get("binlog_file") or metadata.get("server_id") is None:
        return None
    try:
        return int(metadata["server_id"]), str(metadata["binlog_file"])
    except (TypeError, ValueError):
        return None


async def binlog_decisions(repository: Repository, kept: Sequence[Manifest]) -> list[BinlogDecision]:
    """Keep/delete for every archived binlog, given the backups that retention keeps."""
    anchors: dict[tuple[int, str], list[RecoveryStart]] = {}
    for manifest in kept:
        start = recovery_start(manifest)
        if start is None:
            continue
        try:
            base, sequence = binlog_sequence(start[1])
        except ConfigError:
            continue
        anchors.setdefault((start[0], base), []).append(RecoveryStart(manifest.backup_id, (sequence,)))
    decisions: list[BinlogDecision] = []
    for server_id in await archived_server_ids(repository):
        by_base: dict[str, list[ArchivedFile]] = {}
        for name in await archived_records(repository, server_id):
            base, sequence = binlog_sequence(name)
            by_base.setdefault(base, []).append(ArchivedFile(name, (sequence,)))
        for base, files in sorted(by_base.items()):
            for decision in archive_to_keep(anchors.get((server_id, base), []), files):
                decisions.append(BinlogDecision(server_id, decision))
    return decisions


async def prune_binlogs(
    repository: Repository, kept: Sequence[Manifest], *, dry_run: bool = False, lock: bool = True
) -> list[BinlogDecision]:
    """Delete the archived binlogs that ``kept`` backups do not need (record first, then the object).

    Holds the exclusive repository lock unless ``lock`` is False (the caller holds it already).
    """

    async def work() -> list[BinlogDecision]:
        decisions = await binlog_decisions(repository, kept)
        if dry_run:
            return decisions
        records = {sid: await archived_records(repository, sid) for sid in {d.server_id for d in decisions}}
        for item in decisions:
            if item.decision.keep:
                continue
            record = records[item.server_id][item.name]
            await repository.storage.delete(record_path(item.server_id, item.name))
            try:
                await repository.storage.delete(record.object.path)
            except BackstreamError as exc:
                log.warning("could not remove %s: %s", record.object.path, exc)
        return decisions

    if not lock:
        return await work()
    async with repository.lock("prune-binlogs", exclusive=True):
        return await work()
