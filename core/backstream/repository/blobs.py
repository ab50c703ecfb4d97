"""Whole-object reads and writes of small repository files (config, manifests, locks) on a Storage.

Reads are capped so that a hostile or broken file cannot make us buffer without bound.
"""

from __future__ import annotations

from backstream.chunks import split
from backstream.errors import RepositoryError
from backstream.protocols import Storage

MAX_SMALL_OBJECT = 64 * 1024 * 1024
"""The largest config/manifest/lock file we read into memory."""


async def read_small(storage: Storage, path: str, *, limit: int = MAX_SMALL_OBJECT) -> bytes:
    """The bytes of ``path``; more than ``limit`` bytes raises RepositoryError."""
    parts: list[bytes] = []
    total = 0
    async with storage.open_read(path) as chunks:
        async for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise RepositoryError(f"{path} is larger than {limit} bytes; it is not a repository file")
            parts.append(chunk)
    return b"".join(parts)


async def write_small(storage: Storage, path: str, data: bytes) -> None:
    """Write ``data`` to ``path``; the storage commits it only if every chunk was written."""
    async with storage.open_write(path) as writer:
        for chunk in split(data):
            await writer.write(chunk)


async def list_under(storage: Storage, prefix: str) -> list[str]:
    """Repository-relative paths of every object under ``prefix`` (a folder, ``/``-terminated)."""
    found = []
    for entry in await storage.list(prefix):
        path = entry.lstrip("/")
        if not path.startswith(prefix):
            path = prefix + path
        found.append(path)
    return sorted(found)
