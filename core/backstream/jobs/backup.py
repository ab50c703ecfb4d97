"""The backup job: source -> compress -> (encrypt) -> repository object, then the manifest as commit point.

A failure or cancellation at any step leaves no manifest; the job's own objects are removed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio

from backstream.defaults import DEFAULT_COMPRESSION
from backstream.errors import ConfigError, primary_error
from backstream.events import JobFailed, JobFinished, JobStarted
from backstream.jobs.common import (
    CompressionSpec,
    compressor,
    counted,
    error_line,
    manifest_safe,
    open_repository,
    source_factory,
)
from backstream.jobs.encryption import KeyOptions
from backstream.jobs.objects import PluginCodecs
from backstream.pipeline import Transform
from backstream.plugins import Plugins
from backstream.progress import Progress, SizedProgress, expect_total
from backstream.protocols import ByteSource, ContentTap, DumpsFiles, JobContext, NamedDump, SizedSource
from backstream.repository import (
    STATUS_FAILED,
    Manifest,
    ObjectRecord,
    Repository,
    SourceInfo,
    format_time,
    new_backup_id,
    redact_url,
    utc_now,
)
from backstream.repository.lock import this_host
from backstream.repository.objects import store_object
from backstream.verify.catalog import CatalogOptions, capture_catalog

log = logging.getLogger(__name__)

ESTIMATE_TIMEOUT = 10.0
"""Seconds a source may take to estimate its dump size for the progress display; then it goes without."""

DEFAULT_OBJECT_NAME = "dump"
"""Object name for sources without a ``filename`` attribute (the compressor adds its extension)."""


@dataclass(frozen=True)
class LockTiming:
    """How a running backup keeps its repository lock fresh (see ``backstream.repository.lock``)."""

    stale_after: float = 300.0
    heartbeat_interval: float = 30.0


async def backup(
    source: str,
    *,
    repo: str | Repository,
    compress: str | None = DEFAULT_COMPRESSION,
    encrypt: Sequence[str] = (),
    options: Mapping[str, str] | None = None,
    plugins: Plugins | None = None,
    progress: Progress | None = None,
    storage_options: Mapping[str, Any] | None = None,
    keys: KeyOptions | None = None,
    lock_timing: LockTiming | None = None,
    catalog: CatalogOptions | None = None,
    source_plugin: str | None = None,
) -> Manifest:
    """Back ``source`` (a database URL) up into ``repo``; return the committed manifest.

    :param source: ``sqlite:///abs/path.db``, ``postgresql://user@host/db``, ... (the scheme picks the plugin).
    :param repo: a repository URL (any storage plugin's protocol) or an opened ``Repository``.
    :param compress: ``name[:level]`` or ``name:key=value,...`` of a compressor plugin; None or ``none``
        stores the dump uncompressed.
    :param encrypt: key references (``passphrase``, ``local:PATH``, ``aws-kms:KEY``, ...); empty = no encryption.
    :param options: source options (``format``, ``jobs``, ...), passed to the source plugin.
    :param progress: called with the byte count of every chunk read from the source; a
        ``SizedProgress`` is also told the source's ``estimated_size()`` if it has one.
    :param keys: cipher suite, key-provider options (``passphrase_file``, ``keystore``, ...) and audit log.
    :param catalog: what to record for later verification (default: everything, no content
        checksum for tables above a million rows); ``CatalogOptions(level="off")`` records nothing.
    :param source_plugin: use this source plugin (by name) instead of the one for the URL's scheme.
    """
    keys = keys or KeyOptions()  # one per job: its key providers are configured once
    plugins = plugins or Plugins.load()
    lock_timing = lock_timing or LockTiming()
    source_options = {str(k): str(v) for k, v in (options or {}).items()}
    if source_plugin:  # a source chosen by name, e.g. postgresql-physical for --physical
        kind, factory = source_plugin, plugins.sources().get(source_plugin)
    else:
        kind, factory = source_factory(plugins, source)
    spec = CompressionSpec.parse(compress)
    compression = compressor(plugins, spec.name)
    compression.compressor(spec.options)  # validates the options before anything starts
    parallel = _positive_int(source_options.get("jobs", "1"), "jobs")
    codecs = PluginCodecs(plugins, key_refs=encrypt, keys=keys)  # a passphrase's KDF starts now
    opened = factory.open(source, source_options)
    repository = await open_repository(plugins, repo, storage_options)

    started = utc_now()
    backup_id = new_backup_id(started)
    catalog = catalog or CatalogOptions()
    job = JobContext(job_id=backup_id, options=source_options, catalog_level=catalog.level)
    safe_source = redact_url(source)
    details: dict[str, Any] = {"source": safe_source, "repository": repository.url, "backup_id": backup_id}

    async def store(name: str, data: ByteSource) -> ObjectRecord:
        """One object: ``data`` -> (catalog tap) -> compress -> (encrypt) -> ``backups/<id>/data/<name><ext>``."""
        tap = opened.content_tap(job) if isinstance(opened, ContentTap) else None
        return await store_object(
            repository,
            Repository.object_path(backup_id, name + compression.extension),
            counted(data, progress),
            name=name,
            codecs=codecs,
            codec=spec.name,
            codec_options=spec.options,
            context=object_context(backup_id, safe_source, started, spec.name, name),
            taps=[Transform("catalog", tap)] if tap is not None else (),  # per-table rows and checksums
        )

    await _expect_dump_size(opened, progress)
    async with repository.lock(
        "backup",
        exclusive=False,
        backup_id=backup_id,
        stale_after=lock_timing.stale_after,
        heartbeat_interval=lock_timing.heartbeat_interval,
    ):
        plugins.job_started(JobStarted(job_id=backup_id, kind="backup", started_at=started, details=details))
        committing = False
        try:
            if isinstance(opened, DumpsFiles):
                records = await _store_files(opened.dump_files(job), store, parallel)
            else:
                name = opened.filename if isinstance(opened, NamedDump) else DEFAULT_OBJECT_NAME
                records = [await store(name, opened.dump(job))]
            recorded = await capture_catalog(plugins, kind, source, catalog, content=job.content)
            manifest = Manifest(
                backup_id=backup_id,
                repository_id=repository.repository_id,
                source=_source_info(kind, safe_source, job, manifest_safe(job.metadata)),
                started_at=started,
                finished_at=utc_now(),
                objects=tuple(records),
                host=this_host(),
                catalog=recorded,
            )
            committing = True
            await repository.commit(manifest)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await _fail(plugins, repository, backup_id, kind, safe_source, job, started, details, exc, committing)
            raise
    plugins.job_finished(
        JobFinished(
            job_id=backup_id,
            kind="backup",
            started_at=started,
            finished_at=manifest.finished_at,
            details={**details, "stored_size": manifest.stored_size, "plaintext_size": manifest.plaintext_size},
        )
    )
    return manifest


async def _expect_dump_size(source: object, progress: Progress | None) -> None:
    """Tell a progress display the source's estimated dump size; a failed estimate is only logged."""
    if not isinstance(progress, SizedProgress) or not isinstance(source, SizedSource):
        return
    size: int | None = None
    try:
        with anyio.move_on_after(ESTIMATE_TIMEOUT):
            size = await source.estimated_size()
    except Exception as exc:  # a guess for the display: never a reason to fail the backup
        log.info("no size estimate for the progress display: %s", error_line(exc))
        return
    if size:
        expect_total(progress, size, estimate=True)


def object_context(backup_id: str, database: str, started: datetime, codec: str, name: str) -> dict[str, str]:
    """The context bound into an encrypted object's header (checked again on restore)."""
    return {
        "backup_id": backup_id,
        "database": database,
        "created_at": format_time(started),
        "codec": codec,
        "object": name,
    }


async def _store_files(
    files: AbstractAsyncContextManager[AsyncIterator[tuple[str, ByteSource]]],
    store: Callable[[str, ByteSource], Awaitable[ObjectRecord]],
    parallel: int,
) -> list[ObjectRecord]:
    """One pipeline per file of a multi-file dump, at most ``parallel`` at a time; sorted by name."""
    records: list[ObjectRecord] = []
    limiter = anyio.CapacityLimiter(parallel)

    async def one(name: str, data: ByteSource) -> None:
        try:
            records.append(await store(name, data))
        finally:
            limiter.release_on_behalf_of(name)

    try:
        async with files as pairs, anyio.create_task_group() as tg:
            async for name, data in pairs:
                await limiter.acquire_on_behalf_of(name)
                tg.start_soon(one, name, data)
    except BaseExceptionGroup as group:
        raise primary_error(group) from None
    if len({record.name for record in records}) != len(records):
        raise ConfigError("the source produced two files with the same name")
    return sorted(records, key=lambda record: record.name)


def _positive_int(raw: str, what: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{what} must be a positive integer, not {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{what} must be a positive integer, not {raw!r}")
    return value


def _source_info(kind: str, safe_source: str, job: JobContext, metadata: dict[str, Any]) -> SourceInfo:
    def text(key: str) -> str | None:
        value = metadata.get(key)
        return None if value is None else str(value)

    return SourceInfo(
        kind=kind,
        url=safe_source,
        database=text("database"),
        server_version=text("server_version"),
        format=job.options.get("format") or text("format"),
        metadata=metadata,
    )


async def _fail(
    plugins: Plugins,
    repository: Repository,
    backup_id: str,
    kind: str,
    safe_source: str,
    job: JobContext,
    started: datetime,
    details: dict[str, Any],
    exc: BaseException,
    committing: bool,
) -> None:
    """Clean up after a failed backup: remove its objects (unless the commit itself may have landed),
    record the failure for statistics, and tell the listeners."""
    message = "cancelled" if isinstance(exc, anyio.get_cancelled_exc_class() | KeyboardInterrupt) else error_line(exc)
    if not committing:
        await repository.remove_objects(backup_id)
    failed_at = utc_now()
    await repository.record_failure(
        Manifest(
            backup_id=backup_id,
            repository_id=repository.repository_id,
            source=_source_info(kind, safe_source, job, manifest_safe(job.metadata)),
            started_at=started,
            finished_at=failed_at,
            status=STATUS_FAILED,
            host=this_host(),
            error=message,
        )
    )
    plugins.job_failed(
        JobFailed(
            job_id=backup_id, kind="backup", started_at=started, failed_at=failed_at, error=message, details=details
        )
    )
