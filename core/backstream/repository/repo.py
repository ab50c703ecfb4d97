"""A backstream repository on any Storage: init/open, paths, manifests (the commit point), delete.

Layout: ``backstream.json``, ``backups/<id>/data/<object>``, ``backups/<id>/manifest.json``,
``failures/<id>.json`` (failed attempts, for statistics) and ``locks/``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import anyio

from backstream.errors import BackstreamError, ConfigError, RepositoryError
from backstream.protocols import Storage
from backstream.repository.blobs import list_under, read_small, write_small
from backstream.repository.catalog import RepositoryStats, compute_stats
from backstream.repository.config import CONFIG_PATH, RepositoryConfig
from backstream.repository.ids import is_backup_id
from backstream.repository.lock import LockInfo, hold_lock
from backstream.repository.manifest import Manifest
from backstream.repository.urls import redact_url

log = logging.getLogger(__name__)

BACKUPS_PREFIX = "backups/"
FAILURES_PREFIX = "failures/"
MANIFEST_NAME = "manifest.json"
READ_CONCURRENCY = 16
"""Manifests read at once when listing."""


class Repository:
    """An opened, initialised repository. Build one with ``await Repository.open(storage)``."""

    def __init__(self, storage: Storage, config: RepositoryConfig) -> None:
        self.storage = storage
        self.config = config

    # --- opening ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The storage URL without any password."""
        return redact_url(self.storage.url)

    @property
    def repository_id(self) -> str:
        return self.config.repository_id

    @classmethod
    async def open(cls, storage: Storage) -> Repository:
        """Open an initialised repository; a location without ``backstream.json`` says to run init."""
        url = redact_url(storage.url)
        if not await storage.exists(CONFIG_PATH):
            raise RepositoryError(
                f"{url} is not a backstream repository (no {CONFIG_PATH}); create it with: backstream init --repo {url}"
            )
        data = await read_small(storage, CONFIG_PATH, limit=1024 * 1024)
        return cls(storage, RepositoryConfig.from_json(data, where=f"{url}/{CONFIG_PATH}"))

    @classmethod
    async def init(cls, storage: Storage) -> Repository:
        """Create a repository at an empty location; an existing repository is never overwritten."""
        url = redact_url(storage.url)
        if await storage.exists(CONFIG_PATH):
            raise RepositoryError(f"{url} is already a backstream repository; refusing to initialise it again")
        if await list_under(storage, BACKUPS_PREFIX):
            raise RepositoryError(
                f"{url} holds backups but no {CONFIG_PATH}; refusing to initialise over existing data"
            )
        config = RepositoryConfig.new()
        await write_small(storage, CONFIG_PATH, config.to_json())
        return cls(storage, config)

    # --- paths ------------------------------------------------------------------------------

    @staticmethod
    def backup_prefix(backup_id: str) -> str:
        return f"{BACKUPS_PREFIX}{backup_id}/"

    @classmethod
    def object_path(cls, backup_id: str, filename: str) -> str:
        """Where one object of a backup is stored (relative to the repository root)."""
        if not filename or "/" in filename or filename.startswith("."):
            raise ConfigError(f"bad object name {filename!r}")
        return f"{cls.backup_prefix(backup_id)}data/{filename}"

    @classmethod
    def manifest_path(cls, backup_id: str) -> str:
        return f"{cls.backup_prefix(backup_id)}{MANIFEST_NAME}"

    @staticmethod
    def failure_path(backup_id: str) -> str:
        return f"{FAILURES_PREFIX}{backup_id}.json"

    # --- manifests --------------------------------------------------------------------------

    async def commit(self, manifest: Manifest) -> None:
        """Write the manifest: the commit point. Before this returns, the backup does not exist."""
        if manifest.repository_id != self.repository_id:
            raise RepositoryError("manifest belongs to another repository")
        await write_small(self.storage, self.manifest_path(manifest.backup_id), manifest.to_json())

    async def record_failure(self, manifest: Manifest) -> None:
        """Remember a failed attempt for statistics (best effort; never a backup)."""
        try:
            await write_small(self.storage, self.failure_path(manifest.backup_id), manifest.to_json())
        except BackstreamError as exc:
            log.warning("could not record the failed backup %s: %s", manifest.backup_id, exc)

    async def manifest(self, backup_id: str) -> Manifest:
        """The manifest of ``backup_id``; a backup without one does not exist."""
        path = self.manifest_path(backup_id)
        if not is_backup_id(backup_id) or not await self.storage.exists(path):
            raise RepositoryError(f"no backup {backup_id!r} in {self.url} (see: backstream list)")
        return Manifest.from_json(await read_small(self.storage, path), where=f"{self.url}/{path}")

    async def backup_ids(self) -> list[str]:
        """Ids of committed backups (those with a manifest), oldest first."""
        ids = set()
        for path in await list_under(self.storage, BACKUPS_PREFIX):
            parts = path[len(BACKUPS_PREFIX) :].split("/")
            if len(parts) == 2 and parts[1] == MANIFEST_NAME and is_backup_id(parts[0]):
                ids.add(parts[0])
        return sorted(ids)

    async def manifests(self) -> list[Manifest]:
        """Every committed backup's manifest, oldest first; unreadable ones are skipped with a warning."""
        return await self._read_all([self.manifest_path(i) for i in await self.backup_ids()])

    async def failures(self) -> list[Manifest]:
        """Records of failed attempts, oldest first."""
        paths = [p for p in await list_under(self.storage, FAILURES_PREFIX) if p.endswith(".json")]
        return await self._read_all(paths)

    async def resolve(self, ref: str, *, match: Callable[[Manifest], bool] | None = None) -> Manifest:
        """A backup by id, unique id prefix, or ``latest`` (the newest good one that ``match`` accepts)."""
        if ref == "latest":
            candidates = [m for m in await self.manifests() if m.ok and (match is None or match(m))]
            if not candidates:
                raise RepositoryError(f"no successful backup in {self.url} to restore as 'latest'")
            return candidates[-1]
        if is_backup_id(ref):
            return await self.manifest(ref)
        matches = [i for i in await self.backup_ids() if i.startswith(ref)] if ref else []
        if len(matches) == 1:
            return await self.manifest(matches[0])
        if len(matches) > 1:
            raise ConfigError(f"backup id prefix {ref!r} is ambiguous: {', '.join(matches[:5])}")
        raise RepositoryError(f"no backup {ref!r} in {self.url} (see: backstream list)")

    async def stats(self) -> RepositoryStats:
        return compute_stats(await self.manifests(), await self.failures())

    # --- writing ----------------------------------------------------------------------------

    def lock(
        self, operation: str, *, exclusive: bool, backup_id: str | None = None, **timing: float
    ) -> AbstractAsyncContextManager[LockInfo]:
        """Hold a repository lock (see ``backstream.repository.lock.hold_lock``)."""
        return hold_lock(self.storage, operation, exclusive=exclusive, backup_id=backup_id, **timing)

    async def delete(self, backup_id: str) -> Manifest:
        """Delete one backup under an exclusive lock: its manifest first (un-commit), then its objects."""
        async with self.lock("delete", exclusive=True, backup_id=backup_id):
            manifest = await self.manifest(backup_id)
            await self.storage.delete(self.manifest_path(backup_id))
            await self.remove_objects(backup_id)
            return manifest

    async def remove_objects(self, backup_id: str) -> None:
        """Remove every object under ``backups/<id>/`` (after a failure, or after un-committing)."""
        for path in await list_under(self.storage, self.backup_prefix(backup_id)):
            try:
                await self.storage.delete(path)
            except BackstreamError as exc:
                log.warning("could not remove %s: %s", path, exc)

    # --- internals --------------------------------------------------------------------------

    async def _read_all(self, paths: list[str]) -> list[Manifest]:
        results: dict[str, Manifest] = {}
        limiter = anyio.CapacityLimiter(READ_CONCURRENCY)

        async def read(path: str) -> None:
            async with limiter:
                try:
                    data = await read_small(self.storage, path)
                    results[path] = Manifest.from_json(data, where=f"{self.url}/{path}")
                except BackstreamError as exc:
                    log.warning("skipping %s: %s", path, exc)

        async with anyio.create_task_group() as tg:
            for path in paths:
                tg.start_soon(read, path)
        return sorted(results.values(), key=Manifest.sort_key)
