"""``binlog-archive``: copy closed MySQL/MariaDB binlogs into ``binlog/<server-id>/`` of a repository.

Every binlog but the current one (``SHOW BINARY LOGS``) is fetched with ``mariadb-binlog --raw`` (or read
from ``binlog_dir``), its event times indexed, then compressed, optionally encrypted, stored, and recorded.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
from backstream.defaults import DEFAULT_COMPRESSION
from backstream.errors import BackstreamError, ConfigError, RepositoryError, SourceError
from backstream.jobs.common import CompressionSpec, compressor, open_repository
from backstream.jobs.encryption import KeyOptions
from backstream.jobs.objects import PluginCodecs
from backstream.plugins import Plugins
from backstream.repository import Repository, redact_url, utc_now
from backstream.repository.blobs import list_under, read_small, write_small
from backstream.repository.objects import store_object
from backstream.streams import file_source

from backstream_plugins.mysql.binlog.layout import (
    BinlogRecord,
    EventSpan,
    binlog_sequence,
    encryption_context,
    object_path,
    record_path,
    scan_events,
    server_prefix,
)
from backstream_plugins.mysql.connection import MySQLEndpoint, call, parse_mysql_url, query
from backstream_plugins.mysql.optionfile import mysql_password_args
from backstream_plugins.mysql.tools import BINLOG_TOOLS, find_tool, tail_lines

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 60.0
"""Seconds between two rounds of ``--follow``."""


@dataclass
class ArchiveResult:
    """What one archiving round did."""

    server_id: int
    current: str | None
    archived: list[BinlogRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "server_id": self.server_id,
            "current": self.current,
            "archived": [r.name for r in self.archived],
            "skipped": list(self.skipped),
        }


@dataclass(frozen=True)
class _ServerState:
    server_id: int
    logs: list[tuple[str, int]]  # (name, size), oldest first; the last is the current one


def _server_state(endpoint: MySQLEndpoint) -> _ServerState:
    rows = query(endpoint, "SELECT @@server_id, @@log_bin")
    server_id, log_bin = int(rows[0][0]), bool(int(rows[0][1]))
    if not log_bin:
        raise SourceError(
            f"binary logging is off on {endpoint.describe()}: start the server with log_bin (and a server_id)"
        )
    logs = [(str(row[0]), int(row[1])) for row in query(endpoint, "SHOW BINARY LOGS")]
    return _ServerState(server_id, logs)


async def archived_records(repository: Repository, server_id: int) -> dict[str, BinlogRecord]:
    """Every committed binlog record of ``server_id`` in the repository, by file name."""
    found: dict[str, BinlogRecord] = {}
    for path in await list_under(repository.storage, server_prefix(server_id)):
        if not path.endswith(".json"):
            continue
        record = BinlogRecord.from_json(await read_small(repository.storage, path), where=f"{repository.url}/{path}")
        found[record.name] = record
    return found


async def archived_server_ids(repository: Repository) -> list[int]:
    """Server ids that have archived binlogs in the repository."""
    ids = set()
    for path in await list_under(repository.storage, "binlog/"):
        head = path[len("binlog/") :].split("/", 1)[0]
        if head.isdigit():
            ids.add(int(head))
    return sorted(ids)


async def archive_binlogs(
    source: str,
    *,
    repo: str | Repository,
    compress: str | None = DEFAULT_COMPRESSION,
    encrypt: Sequence[str] = (),
    binlog_dir: str | None = None,
    plugins: Plugins | None = None,
    storage_options: Mapping[str, Any] | None = None,
    keys: KeyOptions | None = None,
) -> ArchiveResult:
    """Archive every closed binlog of the server at ``source`` (``mysql://user@host:port``) into ``repo``.

    Idempotent: a file already archived with the same size (and, with ``binlog_dir``, the same sha256) is
    skipped; a different file under the same name raises RepositoryError and archives nothing more.
    """
    keys = keys or KeyOptions()  # one per job: its key providers are configured once
    plugins = plugins or Plugins.load()
    endpoint = parse_mysql_url(source, need_database=False)
    spec = CompressionSpec.parse(compress)
    compression = compressor(plugins, spec.name)
    compression.compressor(spec.options)
    codecs = PluginCodecs(plugins, key_refs=encrypt, keys=keys, prepare=False)  # key work only if a file is new
    if binlog_dir is not None and not os.path.isdir(binlog_dir):
        raise ConfigError(f"--binlog-dir {binlog_dir} is not a directory")
    repository = await open_repository(plugins, repo, storage_options)
    state = await call(endpoint, _server_state, endpoint, doing="listing the binary logs")
    result = ArchiveResult(server_id=state.server_id, current=state.logs[-1][0] if state.logs else None)
    closed = state.logs[:-1]
    if not closed:
        return result
    async with repository.lock("binlog-archive", exclusive=False):
        existing = await archived_records(repository, state.server_id)
        workdir = await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="backstream-binlog-"))
        try:
            for name, size in closed:
                binlog_sequence(name)
                record = existing.get(name)
                if record is not None and binlog_dir is None:
                    if record.object.plaintext_size != size:
                        raise RepositoryError(
                            f"binlog {name} of server {state.server_id} is already archived with "
                            f"{record.object.plaintext_size} bytes, but the server's file has {size}: a different file "
                            "with the same name (was the binlog reset?); refusing to overwrite it"
                        )
                    result.skipped.append(name)
                    continue
                local = await _fetch(endpoint, name, binlog_dir, workdir)
                try:
                    digest = await anyio.to_thread.run_sync(_sha256, local)
                    if record is not None:
                        if record.plaintext_sha256 != digest:
                            raise RepositoryError(
                                f"binlog {name} of server {state.server_id} is already archived with different "
                                "content (sha256 differs); refusing to overwrite it"
                            )
                        result.skipped.append(name)
                        continue
                    span = await anyio.to_thread.run_sync(scan_events, local)
                    stored = await _store(
                        repository, codecs, state.server_id, name, local, digest, span, spec, redact_url(source)
                    )
                    result.archived.append(stored)
                finally:
                    if binlog_dir is None:
                        await anyio.to_thread.run_sync(_unlink, local)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: shutil.rmtree(workdir, ignore_errors=True))
    return result


async def follow_binlogs(
    source: str,
    *,
    interval: float = DEFAULT_INTERVAL,
    max_rounds: int | None = None,
    on_round: Callable[[ArchiveResult], None] | None = None,
    **options: Any,
) -> int:
    """Archive, sleep ``interval`` seconds, repeat, until cancelled or after ``max_rounds``; returns rounds run.

    A failing round is logged and retried on the next one (a server restart must not stop the archiver),
    except a conflicting file, which stops it.
    """
    if interval <= 0:
        raise ConfigError("--interval must be a positive number of seconds")
    rounds = 0
    while max_rounds is None or rounds < max_rounds:
        if rounds:
            await anyio.sleep(interval)
        rounds += 1
        try:
            result = await archive_binlogs(source, **options)
        except RepositoryError:
            raise
        except BackstreamError as exc:
            log.warning("binlog archiving round %d failed (retrying in %gs): %s", rounds, interval, exc)
            continue
        if on_round is not None:
            on_round(result)
    return rounds


async def _fetch(endpoint: MySQLEndpoint, name: str, binlog_dir: str | None, workdir: str) -> str:
    """A local copy of binlog ``name`` (or the file in ``binlog_dir`` itself)."""
    if binlog_dir is not None:
        path = os.path.join(binlog_dir, name)
        if not os.path.isfile(path):
            raise SourceError(f"binlog {name} is listed by the server but not found in {binlog_dir}")
        return path
    tool = find_tool(BINLOG_TOOLS)
    async with mysql_password_args(endpoint.password) as secret:
        argv = [
            tool,
            *secret,
            *endpoint.tool_args(),
            "--read-from-remote-server",
            "--raw",
            f"--result-file={workdir}/",
            name,
        ]
        try:
            done = await anyio.run_process(argv, check=False)
        except OSError as exc:
            raise SourceError(f"cannot start {os.path.basename(tool)}: {exc.strerror or exc}") from exc
    path = os.path.join(workdir, name)
    if done.returncode != 0 or not os.path.isfile(path):
        detail = tail_lines(done.stderr)
        raise SourceError(
            f"fetching binlog {name} from {endpoint.describe()} failed: {os.path.basename(tool)} "
            f"exited with status {done.returncode}" + (f": {detail}" if detail else "")
        )
    return path


async def _store(
    repository: Repository,
    codecs: PluginCodecs,
    server_id: int,
    name: str,
    local: str,
    digest: str,
    span: EventSpan,
    spec: CompressionSpec,
    source: str,
) -> BinlogRecord:
    """Store one binlog (object first, then its record: the commit point)."""
    stored = await store_object(
        repository,
        object_path(server_id, name, codecs.compressor(spec.name).extension),
        file_source(local),
        name=name,
        codecs=codecs,
        codec=spec.name,
        codec_options=spec.options,
        context=encryption_context(repository.repository_id, server_id, name, spec.name),
    )
    record = BinlogRecord(
        server_id=server_id,
        object=stored,
        plaintext_sha256=digest,
        first_event=span.first_event,
        last_event=span.last_event,
        archived_at=utc_now(),
        source=source,
    )
    await write_small(repository.storage, record_path(server_id, name), record.to_json())
    return record


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
