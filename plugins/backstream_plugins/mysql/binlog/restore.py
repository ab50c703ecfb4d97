"""``restore --target-time`` for MySQL/MariaDB: dump + binlog replay.

MySQL: the dump is restored into a stage database, archived binlogs are replayed into it up to the target,
and only then is the stage copied into the target (the source plugin's own atomic restore).
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import anyio.to_thread
from backstream.errors import BackstreamError, ConfigError, RepositoryError, SourceError
from backstream.jobs.common import open_repository, source_factory
from backstream.jobs.encryption import KeyOptions
from backstream.jobs.restore import restore
from backstream.jobs.target_time import BackupNeed, TargetTimeResult, choose_backup, restore_before
from backstream.plugins import Plugins
from backstream.progress import Progress
from backstream.protocols import JobContext
from backstream.repository import Manifest, Repository

from backstream_plugins.mysql.binlog.archive import archived_records
from backstream_plugins.mysql.binlog.replay import ReplayError, fetch, plan_replay, replay
from backstream_plugins.mysql.connection import MySQLEndpoint, call, parse_mysql_url, query, quote_mysql_ident

log = logging.getLogger(__name__)

MAX_IDENTIFIER = 64


BINLOG_NEED = BackupNeed(
    accept=lambda manifest: bool(manifest.source.metadata.get("binlog_file")),
    what="with binlog coordinates",
    refusal="records no binlog coordinates (binary logging was off); it cannot be rolled forward",
)
"""A backup that binlogs can roll forward records where in the binlog its dump was taken."""


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

    MySQL/MariaDB: dump + binlog replay (exact to the second); any other kind: the newest backup not
    after the target (``backstream.jobs.target_time.restore_before``).
    """
    keys = keys or KeyOptions()  # one per job: its key providers are configured once
    if target_time.tzinfo is None:
        raise ConfigError("the target time needs an explicit UTC offset")
    plugins = plugins or Plugins.load()
    kind, _factory = source_factory(plugins, to)
    if kind != "mysql":
        return await restore_before(
            backup,
            repo=repo,
            to=to,
            target_time=target_time,
            force=force,
            source=source,
            options=options,
            plugins=plugins,
            progress=progress,
            storage_options=storage_options,
            keys=keys,
        )
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
    manifest = await choose_backup(repository, backup, kind=kind, target=target_time, source=source, need=BINLOG_NEED)
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
