"""Restore drills and verification: the catalog taken at backup time, checks of a restored target,
drills into a scratch target recorded under ``backups/<id>/drills/`` (or the drill of the backup's
source plugin, a ``RestoreDrill``), and end-to-end object reads.

The committed manifest is never rewritten: a drill is a separate small JSON file beside it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from backstream.errors import BackstreamError, ConfigError
from backstream.jobs.backup import object_context
from backstream.jobs.common import error_line, open_repository
from backstream.jobs.encryption import KeyOptions
from backstream.jobs.objects import PluginCodecs
from backstream.jobs.restore import restore
from backstream.plugins import Plugins
from backstream.protocols import ByteWriter, CheckResult, RestoreDrill
from backstream.repository import Manifest, ObjectRecord, Repository, format_time, parse_time, utc_now
from backstream.repository.blobs import list_under, read_small, write_small
from backstream.repository.objects import read_object as read_verified
from backstream.repository.repo import BACKUPS_PREFIX
from backstream.verify.catalog import checker
from backstream.verify.report import FAIL, PASS, Report, check_level, compare, includes

log = logging.getLogger(__name__)

DRILLS_DIR = "drills"
"""Drill results live in ``backups/<id>/drills/<UTC time>.json``."""


async def verify_target(plugins: Plugins, manifest: Manifest, target: str, level: str) -> list[CheckResult]:
    """Check the restored database at ``target`` against ``manifest``'s catalog at ``level``."""
    check = checker(plugins, manifest.source.kind)
    try:
        actual = await check.inspect(target, level=level, max_rows=None)
    except BackstreamError as exc:
        return [CheckResult("connect", FAIL, error_line(exc))]
    expected = manifest.catalog
    results = compare(expected, actual, level)
    if includes(level, "comprehensive"):
        try:
            results += await check.integrity(target)
        except BackstreamError as exc:
            results.append(CheckResult("integrity", FAIL, error_line(exc)))
    return results


@dataclass(frozen=True)
class DrillResult:
    """One drill: the backup, where and how it was restored, and the report."""

    manifest: Manifest
    report: Report
    restore_seconds: float | None
    finished_at: Any

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "backstream-drill",
            "backup_id": self.manifest.backup_id,
            "finished_at": format_time(self.finished_at),
            "restore_seconds": None if self.restore_seconds is None else round(self.restore_seconds, 3),
            **self.report.to_dict(),
        }


async def run_drill(
    backup: str,
    *,
    repo: str | Repository,
    level: str = "standard",
    scratch: str | None = None,
    plugins: Plugins | None = None,
    keys: KeyOptions | None = None,
    storage_options: Mapping[str, Any] | None = None,
    record: bool = True,
) -> DrillResult:
    """Restore ``backup`` into a scratch target, check it at ``level``, drop the scratch, record the result.

    :param scratch: the server to create the scratch database on (a URL with credentials); by
        default the backup's own source server (its URL as recorded, without a password). For a
        backup whose source plugin drills it itself (a ``RestoreDrill``, e.g. a physical base
        backup), what that plugin makes of it (a directory to make the scratch directory in).
    """
    keys = keys or KeyOptions()  # one per job: its key providers are configured once
    check_level(level)
    plugins = plugins or Plugins.load()
    repository = await open_repository(plugins, repo, storage_options)
    manifest = await repository.resolve(backup)
    if not manifest.ok:
        raise ConfigError(f"backup {manifest.backup_id} has status {manifest.status!r}; only good backups verify")
    async with repository.lock("verify", exclusive=False, backup_id=manifest.backup_id):
        sources = plugins.sources()
        own = sources.get(manifest.source.kind) if manifest.source.kind in sources else None
        if isinstance(own, RestoreDrill):
            url = repo if isinstance(repo, str) else repository.storage.url
            drill = await own.drill(
                manifest, repository, repo_url=url, level=level, plugins=plugins, keys=keys,
                storage_options=storage_options, scratch=scratch,
            )  # fmt: skip
            report = Report(level, tuple(drill.results), dict(drill.details))
            result = DrillResult(manifest, report, drill.restore_seconds, utc_now())
        else:
            result = await _logical_drill(plugins, repository, manifest, level, scratch, keys)
        if record:
            await record_drill(repository, result)
    return result


async def _logical_drill(
    plugins: Plugins, repository: Repository, manifest: Manifest, level: str, scratch: str | None, keys: KeyOptions
) -> DrillResult:
    """Restore into a scratch database (``--scratch`` or the source's server), check, drop it."""
    check = checker(plugins, manifest.source.kind)
    results: list[CheckResult] = []
    seconds: float | None = None
    async with check.scratch(scratch or manifest.source.url) as target:
        started = time.perf_counter()
        try:
            await restore(manifest.backup_id, repo=repository, to=target, plugins=plugins, keys=keys)
        except BackstreamError as exc:
            results.append(CheckResult("restore", FAIL, error_line(exc)))
        else:
            seconds = time.perf_counter() - started
            results.append(CheckResult("restore", PASS, f"restored in {seconds:.2f}s"))
            results += await verify_target(plugins, manifest, target, level)
    return DrillResult(manifest, Report(level, tuple(results)), seconds, utc_now())


async def record_drill(repository: Repository, result: DrillResult) -> str:
    """Write the drill result beside the backup's manifest; returns its path."""
    stamp = result.finished_at.strftime("%Y%m%dT%H%M%S%fZ")
    path = f"{Repository.backup_prefix(result.manifest.backup_id)}{DRILLS_DIR}/{stamp}.json"
    await write_small(repository.storage, path, (json.dumps(result.to_dict(), indent=2) + "\n").encode())
    return path


async def latest_drills(repository: Repository) -> dict[str, dict[str, Any]]:
    """The newest recorded drill of every backup that has one, by backup id (one listing of backups/)."""
    newest: dict[str, str] = {}
    for path in await list_under(repository.storage, BACKUPS_PREFIX):
        parts = path[len(BACKUPS_PREFIX) :].split("/")
        if len(parts) == 3 and parts[1] == DRILLS_DIR and parts[2].endswith(".json"):
            if path > newest.get(parts[0], ""):
                newest[parts[0]] = path
    found: dict[str, dict[str, Any]] = {}
    for backup_id, path in newest.items():
        try:
            document = json.loads(await read_small(repository.storage, path, limit=16 * 1024 * 1024))
            parse_time(str(document["finished_at"]))
            found[backup_id] = document
        except (BackstreamError, ValueError, KeyError, TypeError) as exc:
            log.warning("skipping unreadable drill record %s: %s", path, exc)
    return found


def describe_drill(drill: Mapping[str, Any] | None) -> str:
    """``pass 2026-11-26 00:40 (restore 1.2s)`` or ``never``."""
    if not drill:
        return "never"
    when = parse_time(str(drill["finished_at"])).strftime("%Y-%m-%d %H:%M")
    seconds = drill.get("restore_seconds")
    restore_text = "restore failed" if seconds is None else f"restore {float(seconds):.1f}s"
    return f"{drill.get('status', '?')} {when} ({drill.get('level', '?')}, {restore_text})"


class _Discard:
    """A sink that drops what it receives (the checks are in the object path)."""

    async def write(self, chunk: bytes) -> None:
        pass

    @asynccontextmanager
    async def sink(self) -> AsyncIterator[ByteWriter]:
        yield self


async def read_object(
    plugins: Plugins, repository: Repository, manifest: Manifest, record: ObjectRecord, keys: KeyOptions | None
) -> int:
    """Read one object of a backup end to end (sha256, decryption, decompression, plaintext size);
    returns its size."""
    context = object_context(manifest.backup_id, manifest.source.url, manifest.started_at, record.codec, record.name)
    return await read_stored(plugins, repository, record, context, keys)


async def read_stored(
    plugins: Plugins,
    repository: Repository,
    record: ObjectRecord,
    context: Mapping[str, str],
    keys: KeyOptions | None,
    plaintext_sha256: str | None = None,
    described_by: str = "manifest",
) -> int:
    """Read one stored object end to end (``backstream.repository.objects.read_object``): its stored
    sha256, decryption (``context`` is what its header must be bound to), decompression, plaintext
    size and, if given, plaintext sha256 (``described_by`` names what recorded them, for the error)."""
    await read_verified(
        repository,
        record,
        _Discard().sink(),
        codecs=PluginCodecs(plugins, keys=keys),
        context=context,
        plaintext_sha256=plaintext_sha256,
        described_by=described_by,
    )
    return record.plaintext_size


__all__ = [
    "DrillResult",
    "describe_drill",
    "drill_brief",
    "latest_drills",
    "read_object",
    "read_stored",
    "record_drill",
    "run_drill",
    "verify_target",
]


def drill_brief(drill: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The few fields of a drill record that ``list --json`` shows."""
    if not drill:
        return None
    keys = ("status", "finished_at", "level", "restore_seconds", "pass_rate")
    return {key: drill.get(key) for key in keys}
