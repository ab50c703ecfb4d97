"""The restore job: stored object(s) -> (decrypt) -> decompress -> the target source's ``restore()``.

The stored bytes' size and sha256 are checked while streaming; a mismatch raises IntegrityError from
the data iterator before it ends, so the target commits nothing and stays as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio

from backstream.errors import ConfigError, IntegrityError, primary_error
from backstream.events import JobFailed, JobFinished, JobStarted
from backstream.jobs.backup import object_context
from backstream.jobs.common import (
    compressor,
    counted,
    error_line,
    open_repository,
    source_factory,
)
from backstream.jobs.encryption import KeyOptions, open_decrypting
from backstream.pipeline import LINK_CHUNKS, Pipeline, Transform
from backstream.plugins import Plugins
from backstream.progress import Progress, expect_total
from backstream.protocols import ByteSource, ByteWriter, JobContext, RestoresFiles
from backstream.repository import Manifest, ObjectRecord, Repository, redact_url, utc_now
from backstream.streams import iterable_source


async def restore(
    backup: str,
    *,
    repo: str | Repository,
    to: str,
    force: bool = False,
    source: str | None = None,
    options: Mapping[str, str] | None = None,
    plugins: Plugins | None = None,
    progress: Progress | None = None,
    storage_options: Mapping[str, Any] | None = None,
    keys: KeyOptions | None = None,
) -> Manifest:
    """Restore ``backup`` (an id, a unique id prefix, or ``latest``) from ``repo`` into ``to``.

    :param to: the target URL (``sqlite:///abs/path.db``, ``postgresql://...``); its scheme must be
        served by the same source plugin that made the backup.
    :param force: allow replacing a non-empty target.
    :param source: with ``latest``, only consider backups of this source URL.
    :param options: target options passed to the source plugin (e.g. ``jobs``).
    :param progress: called with the byte count of every stored chunk read; a ``SizedProgress``
        is first told the backup's stored size (the total of those counts).
    :param keys: key-provider options (``passphrase_file``, ``keystore``, ...) and audit log for decryption.
    :return: the manifest of the restored backup.
    """
    keys = keys or KeyOptions()  # one per job: its key providers are configured once
    plugins = plugins or Plugins.load()
    kind, factory = source_factory(plugins, to)
    target_options = {str(k): str(v) for k, v in (options or {}).items()}
    target_options["force"] = "true" if force else "false"
    repository = await open_repository(plugins, repo, storage_options)
    wanted_source = redact_url(source) if source else None

    def eligible(manifest: Manifest) -> bool:
        return manifest.source.kind == kind and (wanted_source is None or manifest.source.url == wanted_source)

    manifest = await repository.resolve(backup, match=eligible)
    if manifest.source.kind != kind:
        raise ConfigError(
            f"backup {manifest.backup_id} is a {manifest.source.kind} backup; it cannot be restored to {redact_url(to)}"
        )
    if not manifest.ok:
        raise ConfigError(f"backup {manifest.backup_id} has status {manifest.status!r}; only good backups restore")
    if not manifest.objects:
        raise ConfigError(f"backup {manifest.backup_id} holds no objects")
    for record in manifest.objects:
        compressor(plugins, record.codec)  # every codec must be installed before anything starts
    target = factory.open(to, target_options)
    if not isinstance(target, RestoresFiles) and len(manifest.objects) != 1:
        raise ConfigError(
            f"backup {manifest.backup_id} has {len(manifest.objects)} files but the {kind} plugin restores one stream"
        )
    reader = ObjectReader(plugins, repository, manifest, keys, progress)
    expect_total(progress, manifest.stored_size)

    started = utc_now()
    job_id = f"restore-{manifest.backup_id}-{started.strftime('%Y%m%dT%H%M%SZ')}"
    job = JobContext(job_id=job_id, options=target_options)
    details: dict[str, Any] = {"backup_id": manifest.backup_id, "target": redact_url(to), "repository": repository.url}
    plugins.job_started(JobStarted(job_id=job_id, kind="restore", started_at=started, details=details))
    try:
        if isinstance(target, RestoresFiles):

            async def files() -> AsyncIterator[tuple[str, ByteSource]]:
                for record in manifest.objects:
                    yield record.name, reader.plaintext(record)

            await target.restore_files(files(), job)
        else:
            async with reader.plaintext(manifest.objects[0]) as chunks:
                await target.restore(chunks, job)
    except BaseException as exc:
        error = primary_error(exc)
        interrupted = isinstance(error, anyio.get_cancelled_exc_class() | KeyboardInterrupt | BaseExceptionGroup)
        message = "cancelled" if interrupted else error_line(error)
        with anyio.CancelScope(shield=True):
            plugins.job_failed(
                JobFailed(
                    job_id=job_id,
                    kind="restore",
                    started_at=started,
                    failed_at=utc_now(),
                    error=message,
                    details=details,
                )
            )
        if error is exc:
            raise
        raise error from None
    plugins.job_finished(
        JobFinished(job_id=job_id, kind="restore", started_at=started, finished_at=utc_now(), details=details)
    )
    return manifest


class ObjectReader:
    """Opens the stored objects of one backup as verified, decrypted, decompressed byte sources."""

    def __init__(
        self,
        plugins: Plugins,
        repository: Repository,
        manifest: Manifest,
        keys: KeyOptions | None,
        progress: Progress | None,
    ) -> None:
        self._plugins = plugins
        self._repository = repository
        self._manifest = manifest
        self._keys = keys
        self._progress = progress

    @asynccontextmanager
    async def plaintext(self, record: ObjectRecord) -> AsyncIterator[AsyncIterator[bytes]]:
        """The object's original bytes. The iterator ends normally only if every check passed."""
        storage = self._repository.storage
        async with verified(storage.open_read(record.path), record, self._progress) as stored:
            transforms: list[Transform] = []
            if record.cipher:
                context = object_context(
                    self._manifest.backup_id,
                    self._manifest.source.url,
                    self._manifest.started_at,
                    record.codec,
                    record.name,
                )
                decrypt, stored = await open_decrypting(
                    self._plugins, stored, context, keys=self._keys, object_name=f"{self._repository.url}/{record.path}"
                )
                transforms.append(decrypt)
            codec = compressor(self._plugins, record.codec).decompressor()
            transforms.append(Transform(f"decompress:{record.codec}", codec))
            bridge = _Bridge(record.plaintext_size)
            pipeline = Pipeline(iterable_source(stored), transforms, bridge.sink())
            failure: BaseException | None = None
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(pipeline.run)
                    try:
                        yield bridge.chunks()
                    except BaseException as exc:
                        # The consumer's own error wins; a cancellation caused by the pipeline failing
                        # is replaced below by the pipeline's error.
                        if not isinstance(exc, anyio.get_cancelled_exc_class()):
                            failure = exc
                        raise
                    tg.cancel_scope.cancel()  # a consumer that stopped early must not leave it waiting
            except BaseExceptionGroup as group:
                raise (failure or primary_error(group)) from None


@asynccontextmanager
async def verified(
    stored: ByteSource, record: ObjectRecord, progress: Progress | None = None
) -> AsyncIterator[AsyncIterator[bytes]]:
    """``stored`` checked against the manifest: too many bytes fail at once; a wrong size or sha256
    fails at the end, before the stream reports its end."""
    async with counted(stored, progress) as chunks:

        async def checking() -> AsyncIterator[bytes]:
            digest = hashlib.sha256()
            size = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > record.stored_size:
                    raise IntegrityError(f"{record.path} is larger than the manifest says ({record.stored_size} bytes)")
                digest.update(chunk)
                yield chunk
            if size != record.stored_size:
                raise IntegrityError(f"{record.path} is truncated: {size} of {record.stored_size} bytes")
            if digest.hexdigest() != record.stored_sha256:
                raise IntegrityError(f"{record.path} does not match its manifest sha256: it was modified or corrupted")

        yield checking()


class _Bridge:
    """Turns the pipeline's sink into the async iterator a source's ``restore()`` consumes.

    The iterator ends normally only after the pipeline committed (every check passed) and the
    plaintext size matched; otherwise it raises the pipeline's error.
    """

    def __init__(self, expected_size: int) -> None:
        self._expected = expected_size
        self._send, self._receive = anyio.create_memory_object_stream[bytes](max_buffer_size=LINK_CHUNKS)
        self._error: BaseException | None = None
        self._done = False
        self._size = 0

    @asynccontextmanager
    async def sink(self) -> AsyncIterator[ByteWriter]:
        try:
            yield self
            if self._size != self._expected:
                raise IntegrityError(f"the restored stream has {self._size} bytes; the manifest says {self._expected}")
            self._done = True
        except BaseException as exc:
            self._error = primary_error(exc)
            raise
        finally:
            self._send.close()

    async def write(self, chunk: bytes) -> None:
        self._size += len(chunk)
        await self._send.send(chunk)

    async def chunks(self) -> AsyncIterator[bytes]:
        with self._receive:
            async for chunk in self._receive:
                yield chunk
        if self._error is not None:
            raise self._error
        if not self._done:
            raise IntegrityError("the backup stream ended early")
