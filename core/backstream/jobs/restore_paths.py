"""Which restore serves a request: the ``RestorePath`` of the backup's source kind, or the plain
restore (the backup's objects streamed into the target source's ``restore``).

``restore_request`` is what ``backstream restore`` runs; a path may call ``restore_plain`` for the
part of its work that is an ordinary restore.
"""

from __future__ import annotations

from backstream.errors import ConfigError
from backstream.jobs.common import open_repository, source_factory
from backstream.jobs.restore import restore
from backstream.plugins import Plugins
from backstream.protocols import RestoreOutcome, RestorePath, RestoreRequest, SourceFactory
from backstream.repository import redact_url

WHERE = (
    "say where to restore: --to TARGET (a database URL), or a target option of a plugin "
    "(see: backstream restore --help)"
)


async def restore_request(request: RestoreRequest, *, plugins: Plugins | None = None) -> RestoreOutcome:
    """Restore as ``request`` asks, by the path of the backup's source kind (see ``restore_kind``)."""
    plugins = plugins or Plugins.load()
    _kind, factory = await restore_kind(plugins, request)
    if isinstance(factory, RestorePath):
        return await factory.restore_backup(request, plugins)
    return await restore_plain(request, plugins)


async def restore_kind(plugins: Plugins, request: RestoreRequest) -> tuple[str, SourceFactory]:
    """The source kind whose path restores ``request``, and its factory: the kind whose path claims
    the request (a target only that kind's backups take); else, for a backup id, the backup's own
    kind (its manifest says); else the kind serving the ``to`` URL's scheme."""
    sources = plugins.sources()
    claimed = [
        entry.name
        for entry in sources.registered()
        if entry.available and isinstance(entry.factory, RestorePath) and entry.factory.claims(request)
    ]
    if len(claimed) > 1:
        raise ConfigError(f"the restore target given is one of {' and '.join(claimed)} backups: give one target")
    if claimed:
        return claimed[0], sources.get(claimed[0])
    if request.backup != "latest" and request.repo:
        repository = await open_repository(plugins, request.repo, request.storage_options)
        kind = (await repository.resolve(request.backup)).source.kind
        if kind in sources:
            return kind, sources.get(kind)
    if not request.to:
        raise ConfigError(WHERE)
    return source_factory(plugins, request.to)


async def restore_plain(request: RestoreRequest, plugins: Plugins) -> RestoreOutcome:
    """The backup streamed into ``request.to`` by its source plugin (``backstream.jobs.restore``);
    a point in time is refused: only a restore path rolls a backup forward."""
    if not request.to:
        raise ConfigError(WHERE)
    kind, _factory = source_factory(plugins, request.to)
    if request.target_time:
        raise ConfigError(f"{kind} backups do not restore to a point in time: --target-time needs a plugin that does")
    manifest = await restore(
        request.backup,
        repo=request.repo,
        to=request.to,
        force=request.force,
        source=request.source,
        options=request.options,
        plugins=plugins,
        progress=request.progress,
        storage_options=request.storage_options,
        keys=request.keys,
    )
    target = redact_url(request.to)
    document = {"backup_id": manifest.backup_id, "target": target, "plaintext_size": manifest.plaintext_size}
    summary = f"restored {manifest.backup_id} to {target}"
    return RestoreOutcome(manifest.backup_id, summary, document, manifest, request.to)
