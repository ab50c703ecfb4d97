"""``restore --target-time`` at backup granularity: the newest good backup that finished at or before
a moment, for any engine. Engines with a log archive (binlog replay, WAL) build on ``choose_backup``
and roll forward from the backup it picks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backstream.errors import ConfigError, RepositoryError
from backstream.jobs.common import open_repository, source_factory
from backstream.jobs.encryption import KeyOptions
from backstream.jobs.restore import restore
from backstream.plugins import Plugins
from backstream.progress import Progress
from backstream.protocols import RestoreOutcome, RestoreRequest
from backstream.repository import Manifest, Repository, format_time, redact_url


def parse_target_time(text: str) -> datetime:
    """``2026-11-25 14:30:00+00`` / ``2026-11-25T14:30:00Z``; a time without a UTC offset is refused."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"cannot read target time {text!r}; use e.g. '2026-11-25 14:30:00+00'") from None
    if moment.tzinfo is None:
        raise ConfigError(
            f"target time {text!r} has no UTC offset; add one, e.g. '{text.strip()}+00' (UTC) or '+01:00'"
        )
    return moment


@dataclass(frozen=True)
class TargetTimeResult:
    """What a ``--target-time`` restore did; ``mode`` is ``backup-granular`` or the engine's roll-forward
    (e.g. ``binlog-replay``), which fills ``replayed`` (the log files applied) and ``replayed_until``."""

    manifest: Manifest
    target_time: datetime
    mode: str
    replayed: tuple[str, ...] = ()
    replayed_until: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup_id": self.manifest.backup_id,
            "target_time": format_time(self.target_time),
            "mode": self.mode,
            "replayed": list(self.replayed),
            "replayed_until": format_time(self.replayed_until) if self.replayed_until else None,
        }


@dataclass(frozen=True)
class BackupNeed:
    """A condition a backup must meet besides its kind and time (e.g. recorded log coordinates).

    ``what`` completes "no successful KIND backup WHAT in ..."; ``refusal`` completes "backup ID ...".
    """

    accept: Callable[[Manifest], bool]
    what: str
    refusal: str


async def choose_backup(
    repository: Repository,
    ref: str,
    *,
    kind: str,
    target: datetime,
    source: str | None = None,
    need: BackupNeed | None = None,
) -> Manifest:
    """``latest``: the newest good backup of ``kind`` that finished at or before ``target`` (and meets
    ``need``); an id: that backup, refused if it finished after the target."""
    wanted_source = redact_url(source) if source else None

    def usable(manifest: Manifest) -> bool:
        return (
            manifest.ok
            and manifest.source.kind == kind
            and (wanted_source is None or manifest.source.url == wanted_source)
            and (need is None or need.accept(manifest))
        )

    if ref == "latest":
        candidates = [m for m in await repository.manifests() if usable(m) and m.finished_at <= target]
        if not candidates:
            what = f"{need.what} " if need else ""
            raise RepositoryError(
                f"no successful {kind} backup {what}in {repository.url} finished at or before {format_time(target)}"
            )
        return max(candidates, key=lambda m: (m.finished_at, m.backup_id))
    manifest = await repository.resolve(ref)
    if manifest.source.kind != kind:
        raise ConfigError(f"backup {manifest.backup_id} is a {manifest.source.kind} backup, not {kind}")
    if not manifest.ok:
        raise ConfigError(f"backup {manifest.backup_id} has status {manifest.status!r}; only good backups restore")
    if manifest.finished_at > target:
        raise ConfigError(
            f"backup {manifest.backup_id} finished at {format_time(manifest.finished_at)}, after the target "
            f"{format_time(target)}; choose an older backup or use latest"
        )
    if need is not None and not need.accept(manifest):
        raise ConfigError(f"backup {manifest.backup_id} {need.refusal}")
    return manifest


async def restore_before(
    backup: str,
    *,
    repo: str | Repository,
    to: str,
    target_time: datetime,
    force: bool = False,
    source: str | None = None,
    options: Mapping[str, str] | None = None,
    plugins: Plugins | None = None,
    progress: Progress | None = None,
    storage_options: Mapping[str, Any] | None = None,
    keys: KeyOptions | None = None,
) -> TargetTimeResult:
    """Restore ``to`` from the newest good backup not after ``target_time`` (timezone-aware)."""
    if target_time.tzinfo is None:
        raise ConfigError("the target time needs an explicit UTC offset")
    plugins = plugins or Plugins.load()
    kind, _factory = source_factory(plugins, to)
    repository = await open_repository(plugins, repo, storage_options)
    manifest = await choose_backup(repository, backup, kind=kind, target=target_time, source=source)
    await restore(
        manifest.backup_id,
        repo=repository,
        to=to,
        force=force,
        options=options,
        plugins=plugins,
        progress=progress,
        keys=keys or KeyOptions(),
    )
    return TargetTimeResult(manifest, target_time, "backup-granular")


def target_time_outcome(result: TargetTimeResult, to: str, *, log_files: str = "log") -> RestoreOutcome:
    """The CLI's summary of a ``--target-time`` restore into ``to``; ``log_files`` names what was replayed."""
    target = redact_url(to)
    if result.mode != "backup-granular":
        summary = (
            f"restored {result.manifest.backup_id} to {target} and replayed {len(result.replayed)} {log_files} file(s) "
            f"up to {format_time(result.target_time)}"
        )
    else:
        summary = (
            f"restored {result.manifest.backup_id} (the newest backup not after {format_time(result.target_time)}) "
            f"to {target}"
        )
    return RestoreOutcome(result.manifest.backup_id, summary, {**result.to_dict(), "target": target})


async def restore_newest_before(request: RestoreRequest, plugins: Plugins) -> RestoreOutcome:
    """A source plugin's ``--target-time`` restore path at backup granularity."""
    if not request.to or not request.target_time:
        raise ConfigError("a point-in-time restore needs --to TARGET and --target-time TIME")
    result = await restore_before(
        request.backup,
        repo=request.repo,
        to=request.to,
        target_time=parse_target_time(request.target_time),
        force=request.force,
        source=request.source,
        options=request.options,
        plugins=plugins,
        progress=request.progress,
        storage_options=request.storage_options,
        keys=request.keys,
    )
    return target_time_outcome(result, request.to)
