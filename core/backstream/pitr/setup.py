"""``pitr setup`` and ``verify-pitr``: configure WAL archiving for a cluster, and prove it works end to end.

Both talk to the server through psycopg; ``verify-pitr`` also reports the recoverable window.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from typing import Any

import anyio

from backstream.errors import ConfigError, SourceError, VerificationError
from backstream.jobs.common import open_repository
from backstream.pgsession import PgSession, import_psycopg
from backstream.pitr.pg_restore_dir import backstream_executable
from backstream.pitr.targets import PHYSICAL_KIND
from backstream.pitr.wal import list_archive
from backstream.pitr.walnames import is_segment, sidecar_path
from backstream.plugins import Plugins
from backstream.repository import format_time
from backstream.repository.urls import redact_url


async def _connect(url: str) -> PgSession:
    psycopg = import_psycopg()
    try:
        return await PgSession.connect(url, connect_timeout=10)
    except psycopg.Error as exc:
        raise SourceError(f"cannot connect to {redact_url(url)}: {' '.join(str(exc).split())}") from exc


def archive_command(repo: str, config_file: str | None = None) -> str:
    """The archive_command value: this installation's ``backstream wal-push``, with the repository or config."""
    where = f"--config {shlex.quote(config_file)}" if config_file else f"--repo {shlex.quote(repo)}"
    return f"{shlex.quote(backstream_executable())} wal-push {where} %p".replace("%", "%%").replace("%%p", "%p")


@dataclass(frozen=True)
class SetupResult:
    settings: dict[str, str]
    applied: bool
    restart_needed: bool


async def pitr_setup(url: str, repo: str, *, config_file: str | None = None, apply: bool = False) -> SetupResult:
    """The settings WAL archiving needs; with ``apply``, set them by ALTER SYSTEM and reload."""
    settings = {"archive_mode": "on", "archive_command": archive_command(repo, config_file)}
    restart = True
    async with await _connect(url) as conn:
        current = dict(
            await conn.execute("SELECT name, setting FROM pg_settings WHERE name IN ('archive_mode', 'wal_level')")
        )
        if current.get("wal_level") == "minimal":
            settings["wal_level"] = "replica"
        restart = current.get("archive_mode") == "off" or "wal_level" in settings
        if apply:
            psycopg = import_psycopg()
            for name, value in settings.items():
                await conn.execute(
                    psycopg.sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        psycopg.sql.Identifier(name), psycopg.sql.Literal(value)
                    )
                )
            await conn.execute("SELECT pg_reload_conf()")
    return SetupResult(settings, apply, restart)


@dataclass(frozen=True)
class PitrWindow:
    segment: str
    waited_seconds: float
    oldest_backup: str | None
    oldest_backup_start: str | None
    newest_wal: str | None
    newest_wal_archived_at: str | None

    def describe(self) -> str:
        if not self.oldest_backup_start:
            return "no physical base backup yet: nothing to recover from (backstream backup URL --physical)"
        return (
            f"recoverable from {self.oldest_backup_start} (backup {self.oldest_backup}) "
            f"to {self.newest_wal_archived_at} (WAL {self.newest_wal})"
        )


async def verify_pitr(
    url: str, repo: str, *, timeout: float = 60.0, storage_options: dict[str, Any] | None = None
) -> PitrWindow:
    """Write a WAL record, switch segments, wait for the closed segment in the archive; report the window."""
    plugins = Plugins.load()
    repository = await open_repository(plugins, repo, storage_options)
    async with await _connect(url) as conn:
        ((mode,),) = await conn.execute("SELECT current_setting('archive_mode')")
        if mode == "off":
            raise VerificationError("archive_mode is off: run backstream pitr setup --apply, then restart PostgreSQL")
        await conn.execute("SELECT pg_logical_emit_message(false, 'backstream', 'verify-pitr')")
        ((segment,),) = await conn.execute("SELECT pg_walfile_name(pg_switch_wal())")
        segment = str(segment)
        started = time.monotonic()
        path = sidecar_path(segment)
        while not await repository.storage.exists(path):
            if time.monotonic() - started > timeout:
                (failed,) = await conn.execute(
                    "SELECT failed_count, last_failed_wal, last_archived_wal FROM pg_stat_archiver"
                )
                raise VerificationError(
                    f"WAL segment {segment} did not reach {repository.url} within {timeout:.0f} s "
                    f"(archiver: {failed[0]} failures, last failed {failed[1]}, last archived {failed[2]}); "
                    "check archive_command and the server log"
                )
            await anyio.sleep(0.2)
    waited = time.monotonic() - started
    backups = [m for m in await repository.manifests() if m.ok and m.source.kind == PHYSICAL_KIND]
    records = [r for r in await list_archive(repository.storage) if is_segment(r.name)]
    newest = max(records, key=lambda r: r.archived_at) if records else None
    oldest = backups[0] if backups else None
    return PitrWindow(
        segment=segment,
        waited_seconds=round(waited, 3),
        oldest_backup=oldest.backup_id if oldest else None,
        oldest_backup_start=format_time(oldest.started_at) if oldest else None,
        newest_wal=newest.name if newest else None,
        newest_wal_archived_at=_iso(newest.archived_at) if newest else None,
    )


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return format_time(datetime.fromtimestamp(epoch, tz=UTC))


def check_url(url: str) -> str:
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{redact_url(url)!r} is not a postgresql:// URL")
    return url
