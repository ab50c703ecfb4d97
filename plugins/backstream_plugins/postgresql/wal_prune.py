"""Retention of archived WAL: delete the segments no kept base backup's recovery window needs.

Applies ``backstream.retention.archive_to_keep``; timeline history and ``.backup`` files are always kept.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from backstream import BackstreamError
from backstream.repository import Manifest, Repository
from backstream.retention import ArchiveDecision, ArchivedFile, RecoveryStart, archive_to_keep

from backstream_plugins.postgresql.continuity import archived_names
from backstream_plugins.postgresql.wal import WalRecord
from backstream_plugins.postgresql.walnames import is_segment, sidecar_path

log = logging.getLogger(__name__)


def segment_position(name: str) -> tuple[int, int, int]:
    """Replay order of a segment name: (timeline, log id, segment), whatever the segment size."""
    return int(name[0:8], 16), int(name[8:16], 16), int(name[16:24], 16)


def recovery_start(manifest: Manifest) -> RecoveryStart | None:
    """The first WAL segment a physical base backup needs, or None for other backups."""
    start = manifest.source.metadata.get("start_wal")
    if not isinstance(start, str) or not is_segment(start):
        return None
    return RecoveryStart(manifest.backup_id, segment_position(start))


async def wal_decisions(repository: Repository, kept: Sequence[Manifest]) -> list[ArchiveDecision]:
    """Keep/delete for every archived WAL segment, given the backups that retention keeps."""
    starts = [start for start in map(recovery_start, kept) if start is not None]
    names = await archived_names(repository.storage)  # the listing alone: no record is read
    segments = [ArchivedFile(name, segment_position(name)) for name in sorted(names) if is_segment(name)]
    return archive_to_keep(starts, segments)


async def prune_wal(repository: Repository, kept: Sequence[Manifest], *, dry_run: bool) -> list[ArchiveDecision]:
    """Delete the WAL segments ``kept`` backups do not need: the record (commit point) first, then
    the object. The caller holds the repository's exclusive lock."""
    decisions = await wal_decisions(repository, kept)
    if dry_run:
        return decisions
    for decision in decisions:
        if decision.keep:
            continue
        where = sidecar_path(decision.file.name)
        record = WalRecord.from_json(await repository.storage.read_bytes(where), where)  # names the object
        await repository.storage.delete(where)
        try:
            await repository.storage.delete(record.object.path)
        except BackstreamError as exc:
            log.warning("could not remove %s: %s", record.object.path, exc)
    return decisions
