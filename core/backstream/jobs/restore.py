"""The restore job: stored object(s) -> (decrypt) -> decompress -> the target source's ``restore()``.

The stored bytes' size and sha256 are checked while streaming; a mismatch raises IntegrityError from
the data iterator before it ends, so the target commits nothing and stays as it was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio

from backstream.errors import ConfigError, primary_error
from backstream.events import JobFailed, JobFinished, JobStarted
from backstream.jobs.backup import object_context
from backstream.jobs.common import compressor, error_line, open_repository, source_factory
from backstream.jobs.encryption import KeyOptions
from backstream.jobs.objects import PluginCodecs
from backstream.plugins import Plugins
from backstream.progress import Progress, expect_total
from backstream.protocols import ByteSource, JobContext, RestoresFiles
from backstream.repository import Manifest, ObjectRecord, Repository, redact_url, utc_now
from backstream.repository.objects import open_object, verified

__all__ = ["ObjectReader", "restore", "verified"]


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
    """Opens the stored objects of one backup as verified, decrypted, decompressed byte sources
    (``backstream.repository.objects.open_object`` with the backup's encryption context)."""

    def __init__(
        self,
        plugins: Plugins,
        repository: Repository,
        manifest: Manifest,
        keys: KeyOptions | None,
        progress: Progress | None,
    ) -> None:
        self._codecs = PluginCodecs(plugins, keys=keys)
        self._repository = repository
        self._manifest = manifest
        self._progress = progress

    def plaintext(self, record: ObjectRecord) -> ByteSource:
        """The object's original bytes. The iterator ends normally only if every check passed."""
        backup = self._manifest
        context = object_context(backup.backup_id, backup.source.url, backup.started_at, record.codec, record.name)
        return open_object(self._repository, record, codecs=self._codecs, context=context, progress=self._progress)
