"""The restore drill of a PostgreSQL physical base backup.

Restore it into a scratch directory (``restore_to_dir``: every stored byte checked; its WAL comes
from the repository's archive through ``wal-fetch``, or is in the backup with ``-X fetch``), check
the files against pg_basebackup's backup_manifest (``pg_verifybackup``), start a throwaway server
that recovers to the end of the backup (consistency) and promotes, run the PostgreSQL checks on
every database and ``pg_amcheck``, then stop and remove it. A base backup records no catalog (it
is a fuzzy copy made consistent by WAL replay), so the databases are checked for being readable and
intact, not against figures from backup time.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from backstream import BackstreamError, Check, CheckResult, ConfigError, Plugins, SourceError
from backstream.jobs.common import error_line
from backstream.jobs.encryption import KeyOptions
from backstream.repository import Manifest, Repository
from backstream.verify.catalog import checker
from backstream.verify.report import FAIL, PASS, SKIP, includes

from backstream_plugins.postgresql.drill_cluster import ScratchCluster, configure, link_tablespaces, scratch_cluster
from backstream_plugins.postgresql.drill_tools import amcheck_cluster, verify_files
from backstream_plugins.postgresql.restore_dir import WAL_CONFIG_NAME, restore_to_dir, server_bindir, start_restored
from backstream_plugins.postgresql.session import connect, import_psycopg
from backstream_plugins.postgresql.targets import RecoveryTarget
from backstream_plugins.postgresql.walconfig import WalConfig, absolute_repo

DATABASE_CHECKS = "postgresql"
"""The check plugin that inspects each database of the restored cluster (the logical backups' one)."""
CONSISTENT = RecoveryTarget(immediate=True)
MAINTENANCE_DATABASES = ("postgres", "template1")
DATABASES = "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname"
BOOTSTRAP_SUPERUSER = "SELECT rolname FROM pg_roles WHERE oid = 10"


@dataclass
class PhysicalDrill:
    """The checks of one drill, the restore time and a summary per database (tables, rows)."""

    results: list[CheckResult] = field(default_factory=list)
    restore_seconds: float | None = None
    databases: dict[str, dict[str, Any]] = field(default_factory=dict)


async def physical_drill(
    manifest: Manifest,
    repository: Repository,
    repo_url: str,
    *,
    level: str,
    plugins: Plugins,
    keys: KeyOptions,
    storage_options: Mapping[str, Any] | None = None,
    scratch: str | None = None,
    start_timeout: float = 600.0,
) -> PhysicalDrill:
    """Drill ``manifest``'s base backup in a new directory under ``scratch`` (default: $TMPDIR)."""
    if scratch and "://" in scratch:
        raise ConfigError(f"a physical backup is drilled in a scratch directory: --scratch takes a path, not {scratch}")
    wal = WalConfig(repo=absolute_repo(repo_url), storage_options=dict(storage_options or {}))
    drill = PhysicalDrill()
    async with scratch_cluster(scratch) as cluster:
        places = {str(s["oid"]): cluster.tablespace_dir(str(s["oid"])) for s in _tablespaces(manifest)}
        mapping = {str(s["location"]): str(places[str(s["oid"])]) for s in _tablespaces(manifest)}
        started = time.perf_counter()
        try:
            await restore_to_dir(
                manifest.backup_id, wal=wal, to_dir=str(cluster.data_dir), target=CONSISTENT,
                port=cluster.port, keys=keys, plugins=plugins, tablespace_map=mapping,
            )  # fmt: skip
            cluster.bindir = server_bindir(None, manifest)
        except BackstreamError as exc:
            drill.results.append(CheckResult("restore", FAIL, error_line(exc)))
            return drill
        drill.restore_seconds = time.perf_counter() - started
        drill.results.append(CheckResult("restore", PASS, f"restored in {drill.restore_seconds:.2f}s"))
        link_tablespaces(cluster, places)
        ignore = [WAL_CONFIG_NAME, *(["tablespace_map"] if places else [])]
        wal_included = manifest.source.metadata.get("wal_method") == "fetch"
        drill.results.append(
            await verify_files(cluster.bindir, cluster.data_dir, wal_included=wal_included, ignore=ignore)
        )
        configure(cluster)
        recovered = await _recover(cluster, manifest, repository, start_timeout)
        drill.results.append(recovered)
        if recovered.status == PASS:
            await _check_databases(drill, plugins, cluster, manifest, level)
    return drill


def _tablespaces(manifest: Manifest) -> list[Mapping[str, Any]]:
    return list(manifest.source.metadata.get("tablespaces") or [])


async def _recover(cluster: ScratchCluster, manifest: Manifest, repository: Repository, timeout: float) -> CheckResult:
    """Start the server; it replays the backup's WAL to the end of the backup and promotes."""
    started = time.perf_counter()
    cluster.started = cluster.starting = True
    try:
        await start_restored(
            cluster.data_dir, manifest, repository.storage, target=CONSISTENT, port=cluster.port,
            pg_bindir=str(cluster.bindir), timeout=timeout,
        )  # fmt: skip
    except BackstreamError as exc:
        cluster.starting = False
        return CheckResult("recovery", FAIL, error_line(exc))
    cluster.starting = False
    seconds = time.perf_counter() - started
    metadata = manifest.source.metadata
    first, last = metadata.get("start_wal"), metadata.get("stop_wal")
    replayed = f" (WAL {first} to {last})" if first != last else f" (WAL segment {first})" if first else ""
    return CheckResult("recovery", PASS, f"consistent and promoted in {seconds:.2f}s{replayed}")


async def _check_databases(
    drill: PhysicalDrill, plugins: Plugins, cluster: ScratchCluster, manifest: Manifest, level: str
) -> None:
    try:
        user, maintenance, databases = await _survey(cluster, manifest)
    except BackstreamError as exc:
        drill.results.append(CheckResult("connect", FAIL, error_line(exc)))
        return
    drill.results.append(CheckResult("connect", PASS, f"connected as {user}, {_count(len(databases), 'database')}"))
    try:
        check: Check | None = checker(plugins, DATABASE_CHECKS)
    except BackstreamError as exc:
        drill.results.append(CheckResult("databases", SKIP, error_line(exc)))
        check = None
    if check is not None:
        for name in databases:
            await _check_database(drill, check, cluster.url(name, user), name, level)
    if not includes(level, "standard"):
        return
    assert cluster.bindir is not None
    amcheck = await amcheck_cluster(
        cluster.bindir, host=str(cluster.socket_dir), port=cluster.port, user=user,
        maintenance_db=maintenance, level=level,
    )  # fmt: skip
    if amcheck is not None:
        drill.results.append(amcheck)
    elif check is not None:  # no pg_amcheck (before PostgreSQL 14): the plugin's amcheck in SQL
        for name in databases:
            for result in await check.integrity(cluster.url(name, user)):
                drill.results.append(CheckResult(f"{result.name} {name}", result.status, result.detail))


async def _check_database(drill: PhysicalDrill, check: Check, url: str, name: str, level: str) -> None:
    """The logical backups' inspection of one database: every table is read (counted at the
    standard level, dumped by pg_dump at the comprehensive one)."""
    try:
        catalog = await check.inspect(url, level=level, max_rows=None)
    except BackstreamError as exc:
        drill.results.append(CheckResult(f"database {name}", FAIL, error_line(exc)))
        return
    summary, detail = _summary(catalog, level)
    drill.databases[name] = summary
    drill.results.append(CheckResult(f"database {name}", PASS, detail))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}{'es' if noun.endswith('x') else 's'}"


def _summary(catalog: Mapping[str, Any], level: str) -> tuple[dict[str, Any], str]:
    tables: Mapping[str, Mapping[str, Any]] = catalog.get("tables") or {}
    summary: dict[str, Any] = {"tables": len(tables)}
    detail = _count(len(tables), "table")
    if includes(level, "standard"):
        summary["rows"] = sum(int(info.get("rows") or 0) for info in tables.values())
        detail += f", {_count(summary['rows'], 'row')} read"
    if includes(level, "comprehensive"):
        indexes = sum(len(info.get("indexes") or {}) for info in tables.values())
        constraints = sum(len(info.get("constraints") or {}) for info in tables.values())
        summed = sum(1 for info in tables.values() if info.get("checksum"))
        detail += f", {_count(indexes, 'index')}, {_count(constraints, 'constraint')}"
        detail += f", {_count(summed, 'content checksum')}"
    return summary, detail


async def _survey(cluster: ScratchCluster, manifest: Manifest) -> tuple[str, str, list[str]]:
    """The bootstrap superuser, a maintenance database, and the databases to check. Any role
    serves to ask (the private socket trusts every one): the backup's user, postgres, or ours."""
    psycopg = import_psycopg()
    recorded = unquote(urlsplit(manifest.source.url).username or "")
    account = cluster.owner.pw_name if cluster.owner is not None else getpass.getuser()
    last: Exception | None = None
    for user in dict.fromkeys(u for u in (recorded, "postgres", account) if u):
        for dbname in MAINTENANCE_DATABASES:
            try:
                async with await connect(**cluster.conninfo(dbname, user)) as session:
                    (superuser,) = (await session.execute(BOOTSTRAP_SUPERUSER))[0]
                    databases = [row[0] for row in await session.execute(DATABASES)]
                return str(superuser), dbname, [str(name) for name in databases]
            except SourceError as exc:  # connect's own error: keep the driver's line for the message
                last = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
            except psycopg.Error as exc:
                last = exc
    raise SourceError(
        f"cannot connect to the drill's server on {cluster.socket_dir}: {error_line(last or Exception())}"
    )


__all__ = ["PhysicalDrill", "physical_drill"]
