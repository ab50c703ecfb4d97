"""The ``wal`` log archive (a ``LogArchive``): PostgreSQL WAL files under ``wal/<timeline>/``, as
``check``, ``cleanup``, ``prune`` and ``stats`` see them.

Files get in through ``wal-push`` (PostgreSQL's archive_command); holes are the segments missing
between archived ones that physical base backups need; the window runs from the oldest base
backup that replays without a hole to the newest archived segment of its timeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from backstream import Plugins, RecoveryWindow
from backstream.jobs import KeyOptions
from backstream.repository import Manifest, Repository
from backstream.repository.check import ArchivedFile, Problem
from backstream.retention import ArchiveDecision

from backstream_plugins.postgresql.continuity import (
    archive_cluster,
    archive_holes,
    archived_names,
    backup_gap,
    needed_from,
)
from backstream_plugins.postgresql.targets import PHYSICAL_KIND
from backstream_plugins.postgresql.wal import WalRecord, fetch_archived, wal_context
from backstream_plugins.postgresql.wal_prune import prune_wal
from backstream_plugins.postgresql.walnames import WAL_PREFIX, is_segment, sidecar_path


class WalArchive:
    """PostgreSQL's WAL archive in a repository."""

    name = "WAL"
    prefix = WAL_PREFIX

    def parse_record(self, data: bytes, where: str, repository_id: str) -> ArchivedFile:
        record = WalRecord.from_json(data, where)
        return ArchivedFile(
            record=record.object,
            context=wal_context(repository_id, record.name, record.object.codec),
            plaintext_sha256=record.plaintext_sha256,
        )

    async def holes(self, repository: Repository, manifests: Sequence[Manifest]) -> list[Problem]:
        """Segments missing between archived ones, each with the physical base backups it cuts off."""
        physical = [m for m in manifests if m.source.kind == PHYSICAL_KIND]
        return [
            Problem(
                "wal",
                sidecar_path(segment),
                f"WAL segment {segment} is missing from the archive (later ones are there): "
                f"backup(s) {', '.join(cut_off)} cannot be replayed past it",
            )
            for segment, cut_off in sorted((await archive_holes(repository.storage, physical)).items())
        ]

    async def window(self, repository: Repository, manifests: Sequence[Manifest]) -> RecoveryWindow | None:
        """From the end of the oldest base backup (of the archive's cluster) whose WAL is all there,
        to when the newest segment of its timeline was archived."""
        physical = [m for m in manifests if m.source.kind == PHYSICAL_KIND]
        cluster = archive_cluster(physical)
        names = await archived_names(repository.storage, with_objects=True)
        for manifest in physical:  # oldest first
            first = needed_from(manifest)
            if first is None or backup_gap(names, manifest) is not None:
                continue
            if cluster is not None and str(manifest.source.metadata.get("system_identifier")) != cluster:
                continue
            on_timeline = [name for name in names if is_segment(name) and name[:8] == first[:8]]
            if not on_timeline:
                continue
            newest = max(on_timeline)
            where = sidecar_path(newest)
            record = WalRecord.from_json(await repository.storage.read_bytes(where), where)
            return RecoveryWindow(
                start=manifest.finished_at,
                end=datetime.fromtimestamp(record.archived_at, UTC),
                detail=f"base backup {manifest.backup_id}, WAL to {newest}",
            )
        return None

    async def prune(
        self, repository: Repository, kept: Sequence[Manifest], *, dry_run: bool
    ) -> list[tuple[str, ArchiveDecision]]:
        return [("wal", decision) for decision in await prune_wal(repository, kept, dry_run=dry_run)]

    async def fetch(
        self, repository: Repository, name: str, path: str, *, plugins: Plugins, keys: KeyOptions | None = None
    ) -> None:
        """``name``: the WAL file's name (``00000001000000000000000A``), with or without its timeline folder."""
        await fetch_archived(plugins, repository, name.rpartition("/")[2], path, keys or KeyOptions())
