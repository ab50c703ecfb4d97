"""``pitr setup`` and ``verify-pitr``: configure WAL archiving for a cluster, and prove it works end to end.

Both talk to the server through psycopg; ``verify-pitr`` also reports the recoverable window.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass
from typing import Any

import anyio
from backstream import ConfigError, Plugins, VerificationError
from backstream.jobs.common import open_repository
from backstream.repository import Manifest, format_time
from backstream.repository.urls import redact_url

from backstream_plugins.postgresql.continuity import (
    NotInHistory,
    archived_names,
    first_missing_across,
    needed_from,
    parse_history,
)
from backstream_plugins.postgresql.restore_dir import backstream_executable
from backstream_plugins.postgresql.session import PgSession, connect, import_psycopg
from backstream_plugins.postgresql.targets import PHYSICAL_KIND
from backstream_plugins.postgresql.walconfig import absolute_repo, load_wal_config
from backstream_plugins.postgresql.walnames import sidecar_path


async def _connect(url: str) -> PgSession:
    return await connect(url, describe=f"to {redact_url(url)}")


def archive_command(repo: str, config_file: str | None = None) -> str:
    """The archive_command value: this installation's ``backstream wal-push``, with the repository or config."""
    if config_file:
        where = f"--config {shlex.quote(os.path.abspath(config_file))}"
    else:
        where = f"--repo {shlex.quote(absolute_repo(repo))}"
    return f"{shlex.quote(backstream_executable())} wal-push {where} %p".replace("%", "%%").replace("%%p", "%p")


@dataclass(frozen=True)
class SetupResult:
    settings: dict[str, str]
    applied: bool
    restart_needed: bool


async def pitr_setup(
    url: str, repo: str, *, config_file: str | None = None, apply: bool = False, check_repo: bool = True
) -> SetupResult:
    """The settings WAL archiving needs; with ``apply``, set them by ALTER SYSTEM and reload.

    Before applying, the repository must open from here (``check_repo``; off when it is reachable
    only from the database server): archiving into a repository that was never initialised would
    fail on every segment while WAL piles up on the server."""
    if apply and check_repo:
        if config_file:  # what wal-push will read: the file alone, not this shell's environment
            config = load_wal_config(config_file=config_file, environment={})
        else:
            config = load_wal_config(repo=repo)
        await open_repository(Plugins.load(), config.repo, config.storage_options)
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


TAKE_ONE = "backstream backup URL --physical"


@dataclass(frozen=True)
class PitrWindow:
    """What ``verify-pitr`` found: the segment it switched to and waited for, and the window.

    ``recoverable_from_*`` is the oldest physical base backup on the current timeline whose WAL,
    from what it needs (``continuity.needed_from``) to ``segment``, is all in the archive.
    ``missing_wal`` is the first segment missing from the oldest such range, and
    ``broken_backups`` the backups that cannot replay past a missing segment;
    ``unchecked_backups`` could not be checked: on a timeline that is no ancestor of the current
    one, the current timeline's history not readable, or no WAL range recorded.
    """

    segment: str
    waited_seconds: float
    recoverable_from_backup: str | None
    recoverable_from: str | None
    newest_wal: str
    missing_wal: str | None = None
    broken_backups: tuple[str, ...] = ()
    unchecked_backups: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when a base backup can be replayed to now and no kept backup is cut off by a hole."""
        return self.recoverable_from_backup is not None and self.missing_wal is None

    def problem(self) -> str | None:
        """Why recovery to now is not assured, in one line; None when it is."""
        if self.complete:
            return None
        if self.missing_wal:
            return f"WAL segment {self.missing_wal} is missing from the archive"
        if self.unchecked_backups:
            return (
                f"no base backup could be checked on the current timeline ({self.segment[:8]}): those on "
                "other timelines need its history (readable with superuser or pg_read_server_files) "
                "and must be its ancestors; take a base backup"
            )
        return "there is no physical base backup to recover from"

    def describe(self) -> str:
        lines = []
        if self.recoverable_from_backup:
            lines.append(
                f"recoverable from {self.recoverable_from} (backup {self.recoverable_from_backup}) "
                f"to now (WAL {self.newest_wal})"
            )
        elif not self.broken_backups:
            lines.append(
                "no physical base backup on this timeline: nothing to recover from (backstream backup URL --physical)"
            )
        if self.missing_wal:
            lines.append(
                f"WAL segment {self.missing_wal} is missing from the archive: backup(s) "
                f"{', '.join(self.broken_backups)} cannot be replayed past it"
                + (
                    ""
                    if self.recoverable_from_backup
                    else "; take a new base backup (backstream backup URL --physical)"
                )
            )
        if self.unchecked_backups:
            lines.append(
                f"not checked (on another branch of the timeline history, history not readable, or no WAL "
                f"range recorded): backup(s) "
                f"{', '.join(self.unchecked_backups)}"
            )
        return "\n".join(lines)


async def verify_pitr(
    url: str, repo: str, *, timeout: float = 60.0, storage_options: dict[str, Any] | None = None
) -> PitrWindow:
    """Write a WAL record, switch segments, wait for the closed segment in the archive; then check
    that every segment the physical base backups need from their start to it is there."""
    plugins = Plugins.load()
    repository = await open_repository(plugins, repo, storage_options)
    async with await _connect(url) as conn:
        ((mode, size, system),) = await conn.execute(
            "SELECT current_setting('archive_mode'),"
            " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),"
            " (SELECT system_identifier::text FROM pg_control_system())"
        )
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
                count, last_failed, last_archived = failed
                if last_archived is not None and str(last_archived) >= segment:
                    raise VerificationError(
                        f"PostgreSQL archived WAL segment {segment}, but not into {repository.url}: "
                        "check that archive_command names this repository (SHOW archive_command)"
                    )
                raise VerificationError(
                    f"WAL segment {segment} did not reach {repository.url} within {timeout:.0f} s "
                    f"(archiver: {count} failures since statistics were reset, last failed "
                    f"{last_failed or 'none'}, last archived {last_archived or 'none'}); "
                    "check archive_command and the server log"
                )
            await anyio.sleep(0.2)
        history = await _timeline_history(conn, int(segment[:8], 16))
    waited = time.monotonic() - started
    # The archiver sends segments in order and retries a failing one until it succeeds, so once
    # ``segment`` is archived every earlier segment has been too: one missing now is lost.
    names = await archived_names(repository.storage, with_objects=True)
    backups = [
        m
        for m in await repository.manifests()
        if m.ok and m.source.kind == PHYSICAL_KIND and str(m.source.metadata.get("system_identifier")) == str(system)
    ]  # a repository may hold other clusters' backups: their WAL names say nothing about this one's
    timeline = segment[:8]
    recoverable: Manifest | None = None
    missing: str | None = None
    broken: list[str] = []
    unchecked: list[str] = []
    for manifest in backups:  # oldest first
        first = needed_from(manifest)
        on_this = first is not None and first[:8] == timeline
        if first is None or (not on_this and history is None) or (on_this and first > segment):
            unchecked.append(manifest.backup_id)  # no WAL range recorded, or another timeline's history unread
            continue
        try:
            gap = first_missing_across(names, first, segment, history or [], int(size))
        except NotInHistory:
            unchecked.append(manifest.backup_id)  # on a branch of history the current timeline did not come from
            continue
        if gap is None:
            recoverable = recoverable or manifest
        elif recoverable is None:
            broken.append(manifest.backup_id)
            missing = missing or gap
    return PitrWindow(
        segment=segment,
        waited_seconds=round(waited, 3),
        recoverable_from_backup=recoverable.backup_id if recoverable else None,
        recoverable_from=format_time(recoverable.started_at) if recoverable else None,
        newest_wal=segment,
        missing_wal=missing,
        broken_backups=tuple(broken),
        unchecked_backups=tuple(unchecked),
    )


async def _timeline_history(conn: PgSession, timeline: int) -> list[tuple[int, int]] | None:
    """The current timeline's history (its ancestors and where each ended), read from the server's
    pg_wal; None on timeline 1, or when this role may not read it (pg_read_file needs superuser
    or pg_read_server_files): then backups on earlier timelines are not checked."""
    if timeline <= 1:
        return None
    try:
        ((text,),) = await conn.execute("SELECT pg_read_file(%s)", (f"pg_wal/{timeline:08X}.history",))
    except import_psycopg().Error:
        return None
    return parse_history(str(text))


def check_url(url: str) -> str:
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{redact_url(url)!r} is not a postgresql:// URL")
    return url
