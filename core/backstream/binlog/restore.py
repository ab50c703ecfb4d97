"""``restore --target-time`` for MySQL/MariaDB (dump + binlog replay) and SQLite (backup-granular).

MySQL: the dump is restored into a stage database, archived binlogs are replayed into it up to the target,
and only then is the stage copied into the target (the source plugin's own atomic restore).
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import anyio.to_thread

from backstream.binlog.archive import archived_records
from backstream.binlog.replay import ReplayError, fetch, plan_replay, replay
from backstream.binlog.server import call, query
from backstream.errors import BackstreamError, ConfigError, RepositoryError, SourceError
from backstream.jobs.common import open_repository, source_factory
from backstream.jobs.encryption import KeyOptions
from backstream.jobs.restore import restore
from backstream.mysqlurl import MySQLEndpoint, parse_mysql_url, quote_mysql_ident
from backstream.plugins import Plugins
from backstream.progress import Progress
from backstream.protocols import JobContext
from backstream.repository import Manifest, Repository, format_time, redact_url

log = logging.getLogger(__name__)

MAX_IDENTIFIER = 64


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
    """What a ``--target-time`` restore did."""

    manifest: Manifest
    target_time: datetime
    mode: str  # "backup-granular" or "binlog-replay"
    replayed: tuple[str, ...] = ()
    replayed_until: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup_id": self.manifest.backup_id,
            "target_time": format_time(self.target_time),
            "mode": self.mode,
            "replayed_binlogs": list(self.replayed),
            "replayed_until": format_time(self.replayed_until) if self.replayed_until else None,
        }


async def choose_backup(
    repository: Repository,
    ref: str,
    *,
    kind: str,
    target: datetime,
    source: str | None = None,
    need_binlog: bool = False,
) -> Manifest:
    """``latest``: the newest good backup of ``kind`` that finished at or before ``target`` (and records
    binlog coordinates when ``need_binlog``); an id: that backup, refused if it finished after the target."""
    wanted_source = redact_url(source) if source else None

    def usable(manifest: Manifest) -> bool:
        return (
            manifest.ok
            and manifest.source.kind == kind
            and (wanted_source is None or manifest.source.url == wanted_source)
            and (not need_binlog or bool(manifest.source.metadata.get("binlog_file")))
        )

    if ref == "latest":
        candidates = [m for m in await repository.manifests() if usable(m) and m.finished_at <= target]
        if not candidates:
            what = "with binlog coordinates " if need_binlog else ""
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
    if need_binlog and not manifest.source.metadata.get("binlog_file"):
        raise ConfigError(
            f"backup {manifest.backup_id} records no binlog coordinates (binary logging was off); it cannot be "
            "rolled forward"
        )
    return manifest


async def restore_to_time(
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
    """Restore ``to`` as it was at ``target_time`` (timezone-aware).

    MySQL/MariaDB: dump + binlog replay (exact to the second); PostgreSQL: refused here (physical PITR
    restores to a data directory); any other kind (SQLite): the newest backup not after the target.
    """
    keys = keys or KeyOptions()  # one per job: its key providers are configured once
    if target_time.tzinfo is None:
        raise ConfigError("the target time needs an explicit UTC offset")
    plugins = plugins or Plugins.load()
    kind, _factory = source_factory(plugins, to)
    repository = await open_repository(plugins, repo, storage_options)
    common: dict[str, Any] = {
        "repo": repository,
        "to": to,
        "force": force,
        "options": options,
        "plugins": plugins,
        "progress": progress,
        "keys": keys,
    }
    if kind == "postgresql":
        raise ConfigError(
            "PostgreSQL point-in-time restore replays WAL onto a physical base backup: "
            "use restore ID --to-dir DATADIR --target-time ..."
        )
    if kind != "mysql":
        manifest = await choose_backup(repository, backup, kind=kind, target=target_time, source=source)
        await restore(manifest.backup_id, **common)
        return TargetTimeResult(manifest, target_time, "backup-granular")
    manifest = await choose_backup(repository, backup, kind=kind, target=target_time, source=source, need_binlog=True)
    return await _mysql_pitr(manifest, repository, target_time, common)


async def _mysql_pitr(
    manifest: Manifest, repository: Repository, target_time: datetime, common: dict[str, Any]
) -> TargetTimeResult:
    plugins: Plugins = common["plugins"]
    to: str = common["to"]
    endpoint = parse_mysql_url(to, need_database=True)
    metadata = manifest.source.metadata
    source_database = str(metadata.get("database") or manifest.source.database or "")
    if not source_database:
        raise RepositoryError(f"backup {manifest.backup_id} does not record which database it holds")
    try:
        server_id = int(metadata["server_id"])
        start_file = str(metadata["binlog_file"])
        start_position = int(metadata["binlog_position"])
    except (KeyError, TypeError, ValueError):
        raise RepositoryError(
            f"backup {manifest.backup_id} does not record its server id and binlog position; it cannot be rolled "
            "forward"
        ) from None
    records = await archived_records(repository, server_id)
    plan = plan_replay(
        list(records.values()),
        server_id=server_id,
        start_file=start_file,
        start_position=start_position,
        target=target_time,
    )
    if not common["force"]:
        await call(endpoint, _refuse_non_empty, endpoint, doing="checking the target")
    stage = _stage_name(endpoint.database)
    stage_url = _with_database(to, stage)
    workdir = await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="backstream-pitr-"))
    stage_created = False
    try:
        local = [await fetch(plugins, repository, record, workdir, common["keys"]) for record in plan.files]
        stage_created = True
        await restore(manifest.backup_id, **{**common, "to": stage_url, "force": False})
        try:
            progress = await replay(
                plan,
                local,
                endpoint=endpoint,
                source_database=source_database,
                into_database=stage,
                log_bin=_flag(dict(common["options"] or {}).get("replay_log_bin", "true")),
            )
        except ReplayError as exc:
            raise ReplayError(
                f"point-in-time restore stopped and the target {endpoint.database!r} was not changed: {exc.reason}",
                exc.progress,
            ) from exc
        await _copy_stage(plugins, stage_url, to, common["force"], manifest)
    finally:
        with anyio.CancelScope(shield=True):
            if stage_created:
                try:
                    await call(endpoint, query, endpoint, f"DROP DATABASE IF EXISTS {quote_mysql_ident(stage)}")
                except BackstreamError as exc:
                    log.warning("could not drop the stage database %s: %s", stage, exc)
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(workdir, ignore_errors=True))
    return TargetTimeResult(
        manifest,
        target_time,
        "binlog-replay",
        replayed=tuple(progress.applied),
        replayed_until=progress.last_time,
    )


async def _copy_stage(plugins: Plugins, stage_url: str, to: str, force: bool, manifest: Manifest) -> None:
    """Stream a dump of the stage database into the target through the source plugin's atomic restore."""
    _kind, factory = source_factory(plugins, to)
    dumper = factory.open(stage_url, {"binlog": "false"})
    target = factory.open(to, {"force": "true" if force else "false"})
    dump_job = JobContext(job_id=f"pitr-stage-{manifest.backup_id}", options={"binlog": "false"})
    restore_job = JobContext(
        job_id=f"pitr-{manifest.backup_id}",
        options={"force": "true" if force else "false"},
        metadata=dict(manifest.source.metadata),
    )
    async with dumper.dump(dump_job) as chunks:
        await target.restore(chunks, restore_job)


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _refuse_non_empty(endpoint: MySQLEndpoint) -> None:
    rows = query(
        endpoint,
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
        (endpoint.database,),
    )
    if int(rows[0][0]):
        raise SourceError(
            f"the target database {endpoint.database!r} is not empty ({int(rows[0][0])} tables or views); "
            "use --force to replace its content"
        )


def _stage_name(database: str) -> str:
    suffix = f"__backstream_pitr_{secrets.token_hex(4)}"
    return database[: MAX_IDENTIFIER - len(suffix)] + suffix


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return parts._replace(path="/" + quote(database, safe="")).geturl()
