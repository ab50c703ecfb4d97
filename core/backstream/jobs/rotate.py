"""Repository-wide key rotation: re-wrap every encrypted object's data key, then commit a new manifest.

Objects are streamed into new paths with a rewritten header (body copied through); the new manifest commits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

import anyio

from backstream.crypto import AuditLog, configure_provider, key_providers, rewrap_encrypted
from backstream.errors import BackstreamError, ConfigError, IntegrityError
from backstream.jobs.backup import object_context
from backstream.plugins import Plugins
from backstream.protocols import KeyProvider
from backstream.repository import Manifest, ObjectRecord, Repository

log = logging.getLogger(__name__)

ROTATED_MARK = ".rot-"
"""New object names are ``<stem>.rot-<random hex>.<extension>``: the standard extension (``.zst``,
``.gz``, ...) stays last, so the object still names its format."""


@dataclass(frozen=True)
class RotatedBackup:
    """One rotated backup: its new manifest and how many objects were re-wrapped."""

    manifest: Manifest
    objects: int


async def rotate_repository(
    repository: Repository,
    backups: Sequence[str],
    key_refs: Sequence[str],
    *,
    plugins: Plugins | None = None,
    provider_options: Mapping[str, str] | None = None,
    wrap_options: Mapping[str, str] | None = None,
    keep_existing: bool = False,
    audit: AuditLog | None = None,
) -> list[RotatedBackup]:
    """Re-wrap the data keys of every encrypted object of ``backups`` (ids, prefixes or ``latest``;
    empty = all committed backups) for ``key_refs``, under the repository's exclusive lock.

    ``provider_options`` open the current stanzas; ``wrap_options`` (default: the same) configure
    the providers that wrap for the new keys. Per backup: new objects are written first, then the new
    manifest (the commit point), then the old objects are deleted. A failure before the commit
    leaves the old manifest and objects as they were (new objects are removed, best effort)."""
    if not key_refs:
        raise ConfigError("no new key given: pass at least one --to KEYREF")
    plugins = plugins or Plugins.load()
    audit = audit if audit is not None else AuditLog()
    registry = plugins.kms()
    providers = key_providers(registry, provider_options or {})
    wrap = wrap_options if wrap_options is not None else (provider_options or {})
    wrap_providers = {scheme: configure_provider(p, wrap) for scheme, p in key_providers(registry).items()}
    results = []
    async with repository.lock("rotate", exclusive=True):
        ids = [(await repository.resolve(ref)).backup_id for ref in backups] if backups else None
        if ids is None:
            ids = await repository.backup_ids()
        for backup_id in dict.fromkeys(ids):
            manifest = await repository.manifest(backup_id)
            if not manifest.encrypted:
                continue
            results.append(
                await _rotate_backup(
                    repository,
                    manifest,
                    key_refs,
                    providers=providers,
                    wrap_providers=wrap_providers,
                    keep_existing=keep_existing,
                    audit=audit,
                )
            )
    return results


async def _rotate_backup(
    repository: Repository,
    manifest: Manifest,
    key_refs: Sequence[str],
    *,
    providers: Mapping[str, KeyProvider],
    wrap_providers: Mapping[str, KeyProvider],
    keep_existing: bool,
    audit: AuditLog,
) -> RotatedBackup:
    written: list[str] = []
    records: list[ObjectRecord] = []
    try:
        for record in manifest.objects:
            if not record.cipher:
                records.append(record)
                continue
            new_path = _new_path(manifest.backup_id, record.path)
            written.append(new_path)
            records.append(
                await _rotate_object(
                    repository,
                    manifest,
                    record,
                    new_path,
                    key_refs,
                    providers=providers,
                    wrap_providers=wrap_providers,
                    keep_existing=keep_existing,
                    audit=audit,
                )
            )
        new_manifest = dataclasses.replace(manifest, objects=tuple(records))
        await repository.commit(new_manifest)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _delete_all(repository, written)
        raise
    await audit.record(
        "rotate-backup",
        repository=repository.url,
        backup_id=manifest.backup_id,
        objects=len(written),
        new_keys=list(key_refs),
    )
    await _delete_all(repository, [r.path for r in manifest.objects if r.cipher and r.path not in written])
    return RotatedBackup(new_manifest, len(written))


async def _rotate_object(
    repository: Repository,
    manifest: Manifest,
    record: ObjectRecord,
    new_path: str,
    key_refs: Sequence[str],
    *,
    providers: Mapping[str, KeyProvider],
    wrap_providers: Mapping[str, KeyProvider],
    keep_existing: bool,
    audit: AuditLog,
) -> ObjectRecord:
    """Stream ``record`` into ``new_path`` with a re-wrapped header; check the copy; the new record."""
    storage = repository.storage
    where = f"{repository.url}/{record.path}"
    context = object_context(manifest.backup_id, manifest.source.url, manifest.started_at, record.codec, record.name)
    old_stored = hashlib.sha256()
    old_size = 0
    body = hashlib.sha256()

    async def counted(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        nonlocal old_size
        async for chunk in chunks:
            old_stored.update(chunk)
            old_size += len(chunk)
            yield chunk

    async with storage.open_read(record.path) as chunks:
        rotated = await rewrap_encrypted(
            counted(chunks),
            key_refs,
            providers=providers,
            wrap_providers=wrap_providers,
            keep_existing=keep_existing,
            expect_context=context,
            object_name=f"{repository.url}/{new_path}",
            audit=audit,
        )
        async with storage.open_write(new_path) as writer:
            await writer.write(rotated.header.raw)
            async for chunk in rotated.rest:
                body.update(chunk)
                await writer.write(chunk)
    if old_size != record.stored_size or old_stored.hexdigest() != record.stored_sha256:
        raise IntegrityError(f"{where} does not match its manifest (size or sha256); not rotating it")
    new_stored, new_size, new_body = await _hash_object(repository, new_path, len(rotated.header.raw))
    if new_body != body.hexdigest():
        raise IntegrityError(f"the rotated copy of {where} has a different body; the old object is kept")
    refs = [*record.key_refs, *key_refs] if keep_existing else list(key_refs)
    return dataclasses.replace(
        record,
        path=new_path,
        stored_size=new_size,
        stored_sha256=new_stored,
        key_refs=tuple(dict.fromkeys(refs)),
    )


async def _hash_object(repository: Repository, path: str, header_size: int) -> tuple[str, int, str]:
    """Read ``path`` back: sha256 of all bytes, size, sha256 of the bytes after the header."""
    whole, body = hashlib.sha256(), hashlib.sha256()
    size = 0
    async with repository.storage.open_read(path) as chunks:
        async for chunk in chunks:
            whole.update(chunk)
            skip = max(0, min(len(chunk), header_size - size))
            body.update(memoryview(chunk)[skip:])
            size += len(chunk)
    return whole.hexdigest(), size, body.hexdigest()


def _new_path(backup_id: str, old_path: str) -> str:
    name = old_path.rpartition("/")[2]
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    stem = stem.partition(ROTATED_MARK)[0]
    suffix = f".{extension}" if extension else ""
    return Repository.object_path(backup_id, f"{stem}{ROTATED_MARK}{secrets.token_hex(6)}{suffix}")


async def _delete_all(repository: Repository, paths: Sequence[str]) -> None:
    for path in paths:
        try:
            if await repository.storage.exists(path):
                await repository.storage.delete(path)
        except BackstreamError as exc:
            log.warning("could not remove %s (backstream cleanup removes it later): %s", path, exc)
