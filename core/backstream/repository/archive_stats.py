"""Sizes and recovery windows of the log archives beside the backups, for ``stats``.

Each archive's records are read (16 at a time) for the sizes they name; nothing is decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import anyio

from backstream.errors import BackstreamError
from backstream.protocols import LogArchive, RecoveryWindow
from backstream.repository.blobs import read_small
from backstream.repository.check import ARCHIVE_CONCURRENCY, RECORD_SUFFIX
from backstream.repository.ids import format_time
from backstream.repository.manifest import Manifest
from backstream.repository.repo import Repository


@dataclass(frozen=True)
class ArchiveStats:
    """One archive's files, their total size as produced and as stored, unreadable records, and the
    recovery window it gives the backups (None when there is none)."""

    name: str
    files: int
    plaintext_size: int
    stored_size: int
    unreadable: int
    window: RecoveryWindow | None = None

    def to_dict(self) -> dict[str, object]:
        window = self.window
        return {
            "name": self.name,
            "files": self.files,
            "plaintext_size": self.plaintext_size,
            "stored_size": self.stored_size,
            "unreadable": self.unreadable,
            "window": None if window is None else _window_dict(window),
        }


def _window_dict(window: RecoveryWindow) -> dict[str, str]:
    return {"start": format_time(window.start), "end": format_time(window.end), "detail": window.detail}


async def archive_stats(repository: Repository, archives: Sequence[LogArchive]) -> list[ArchiveStats]:
    """The statistics of every archive in ``archives`` that holds at least one record."""
    found = []
    manifests: list[Manifest] | None = None
    for archive in archives:
        stats = await _one(repository, archive)
        if stats.files or stats.unreadable:
            if manifests is None:
                manifests = [m for m in await repository.manifests() if m.ok]
            window = await archive.window(repository, manifests)
            found.append(replace(stats, window=window))
    return found


async def _one(repository: Repository, archive: LogArchive) -> ArchiveStats:
    records = [p for p in await repository.storage.list(archive.prefix) if p.endswith(RECORD_SUFFIX)]
    limiter = anyio.CapacityLimiter(ARCHIVE_CONCURRENCY)
    sizes: list[tuple[int, int]] = []
    unreadable = 0

    async def read(path: str) -> None:
        nonlocal unreadable
        async with limiter:
            try:
                data = await read_small(repository.storage, path)
                record = archive.parse_record(data, path, repository.repository_id)
            except BackstreamError:
                unreadable += 1  # check names it; stats only counts it
                return
            sizes.append((record.record.plaintext_size, record.record.stored_size))

    async with anyio.create_task_group() as tg:
        for path in records:
            tg.start_soon(read, path)
    return ArchiveStats(
        name=archive.name,
        files=len(sizes),
        plaintext_size=sum(p for p, _ in sizes),
        stored_size=sum(s for _, s in sizes),
        unreadable=unreadable,
    )
