"""Point-in-time replay of archived binlogs: choose the files, fetch them, pipe ``mariadb-binlog`` into the client.

``plan_replay`` is pure (which files, checked for gaps before anything runs); ``replay`` applies a plan
file by file and, on failure, says exactly how far it got.
"""

from __future__ import annotations

import os
import re
import subprocess
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import anyio
from anyio.abc import ByteReceiveStream
from backstream.errors import ConfigError, RepositoryError, SourceError
from backstream.jobs.encryption import KeyOptions
from backstream.jobs.objects import PluginCodecs
from backstream.plugins import Plugins
from backstream.repository import Repository, format_time
from backstream.repository.objects import read_object
from backstream.streams import file_sink
from backstream.tools import kill_tool, open_tool

from backstream_plugins.mysql.binlog.layout import BinlogRecord, binlog_sequence, encryption_context
from backstream_plugins.mysql.connection import MySQLEndpoint
from backstream_plugins.mysql.optionfile import mysql_password_args
from backstream_plugins.mysql.tools import BINLOG_TOOLS, CLIENT_TOOLS, find_tool, tail_lines

READ_SIZE = 256 * 1024
_AT = re.compile(rb"^# at (\d+)$")
_CLIENT_LINE = re.compile(r"at line (\d+)")


def stop_datetime(target: datetime) -> datetime:
    """The ``--stop-datetime`` for a target: binlog events carry whole UTC seconds, and the tool stops at
    the first event stamped at or after it, so a fractional target is rounded up to the next second."""
    if target.tzinfo is None:
        raise ConfigError("the target time needs an explicit UTC offset, e.g. 2026-11-25 14:30:00+00")
    moment = target.astimezone(UTC)
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


@dataclass(frozen=True)
class ReplayPlan:
    """The archived files to replay, in order, from ``start_position`` in the first up to ``stop``."""

    server_id: int
    start_file: str
    start_position: int
    stop: datetime
    files: tuple[BinlogRecord, ...]


def plan_replay(
    records: Sequence[BinlogRecord], *, server_id: int, start_file: str, start_position: int, target: datetime
) -> ReplayPlan:
    """Which archived binlogs a replay from ``start_file:start_position`` to ``target`` needs.

    Raises RepositoryError naming the first missing file when the chain has a gap, or when the archive
    ends before the target (the files that would hold events up to it are not archived yet).
    """
    stop = stop_datetime(target)
    base, first_seq = binlog_sequence(start_file)
    chain = {r.sequence: r for r in records if binlog_sequence(r.name)[0] == base}
    files: list[BinlogRecord] = []
    seq = first_seq
    while True:
        record = chain.get(seq)
        if record is None:
            name = f"{base}.{seq:0{len(start_file) - len(base) - 1}d}"
            later = sorted(s for s in chain if s > seq)
            if seq == first_seq:
                raise RepositoryError(
                    f"binlog {name} of server {server_id} (where the backup's coordinates start) is not archived; "
                    "run: backstream binlog-archive"
                )
            if later:
                raise RepositoryError(
                    f"binlog {name} of server {server_id} is missing from the archive "
                    f"(archived: {files[-1].name} and {chain[later[0]].name}); cannot replay past the gap"
                )
            last = files[-1]
            ended = format_time(last.last_event) if last.last_event else "an unknown time"
            raise RepositoryError(
                f"the archived binlogs of server {server_id} end with {last.name} (last event at {ended}), "
                f"before the target {format_time(stop)}; archive the newer binlogs (FLUSH BINARY LOGS, then "
                "backstream binlog-archive) or choose an earlier target"
            )
        files.append(record)
        if record.last_event is not None and record.last_event >= stop:
            break
        seq += 1
    return ReplayPlan(server_id, start_file, start_position, stop, tuple(files))


@dataclass
class ReplayProgress:
    """How far a replay got: files applied completely, and where the one that failed stopped."""

    applied: list[str] = field(default_factory=list)
    last_time: datetime | None = None
    failed_file: str | None = None
    failed_position: int | None = None

    def describe(self) -> str:
        done = f"applied completely: {', '.join(self.applied)}" if self.applied else "no binlog file was applied"
        if self.last_time is not None:
            done += f" (events up to {format_time(self.last_time)})"
        if self.failed_file:
            where = f" at position {self.failed_position}" if self.failed_position is not None else ""
            done += f"; failed in {self.failed_file}{where} (events before it in that file were applied)"
        return done


class ReplayError(SourceError):
    """Replaying binlogs failed; ``progress`` says how far it got."""

    def __init__(self, message: str, progress: ReplayProgress) -> None:
        super().__init__(f"{message}; {progress.describe()}")
        self.reason = message
        self.progress = progress


async def fetch(
    plugins: Plugins,
    repository: Repository,
    record: BinlogRecord,
    directory: str,
    keys: KeyOptions | None = None,
) -> str:
    """Verify, decrypt and decompress one archived binlog into ``directory``; returns the local path."""
    target = os.path.join(directory, record.name)
    stored = record.object
    if not await repository.storage.exists(stored.path):
        raise RepositoryError(f"{repository.url}/{stored.path} (binlog {record.name}) is missing from the repository")
    await read_object(
        repository,
        stored,
        file_sink(target, fsync=False),
        codecs=PluginCodecs(plugins, keys=keys),
        context=encryption_context(repository.repository_id, record.server_id, record.name, stored.codec),
        plaintext_sha256=record.plaintext_sha256,
        described_by="binlog record",
    )
    return target


async def replay(
    plan: ReplayPlan,
    local_files: Sequence[str],
    *,
    endpoint: MySQLEndpoint,
    source_database: str,
    into_database: str,
    log_bin: bool = True,
) -> ReplayProgress:
    """Apply ``local_files`` (the plan's files, fetched) to ``into_database`` on ``endpoint``.

    Only events of ``source_database`` are applied, renamed to ``into_database``. With ``log_bin`` False
    the replayed statements are kept out of the server's binlog (``--disable-log-bin``; needs SUPER).
    Raises ReplayError saying how far it got.
    """
    binlog_tool = find_tool(BINLOG_TOOLS)
    client_tool = find_tool(CLIENT_TOOLS)
    progress = ReplayProgress()
    env = {**os.environ, "TZ": "UTC"}  # --stop-datetime is read in the tool's local time zone
    stop = plan.stop.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    for index, (record, path) in enumerate(zip(plan.files, local_files, strict=True)):
        argv = [
            binlog_tool,
            "--no-defaults",
            "--skip-gtid-strict-mode",
            f"--stop-datetime={stop}",
            f"--database={source_database}",  # MariaDB filters on the original name, before the rewrite
            f"--rewrite-db={source_database}->{into_database}",
        ]
        if not log_bin:
            argv.append("--disable-log-bin")
        if index == 0:
            argv.append(f"--start-position={plan.start_position}")
        argv.append(path)
        await _apply_one(argv, client_tool, endpoint, into_database, env, record, progress)
        progress.applied.append(record.name)
        if record.last_event is not None:
            progress.last_time = min(record.last_event, plan.stop)
    return progress


async def _apply_one(
    binlog_argv: list[str],
    client_tool: str,
    endpoint: MySQLEndpoint,
    database: str,
    env: dict[str, str],
    record: BinlogRecord,
    progress: ReplayProgress,
) -> None:
    """``mariadb-binlog FILE | mariadb DB``, piped through us to map a client error to a binlog position."""
    markers_line = array("q")
    markers_pos = array("q")
    decoder_err = bytearray()
    client_err = bytearray()
    async with mysql_password_args(endpoint.password) as secret:
        client_argv = [
            client_tool,
            *secret,
            *endpoint.tool_args(),
            f"--database={database}",
            "--batch",
            "--binary-mode",
            "--default-character-set=utf8mb4",
            "--max-allowed-packet=1G",
        ]
        try:
            decoder = await open_tool(binlog_argv, stdin=subprocess.DEVNULL, env=env)
        except OSError as exc:
            raise SourceError(f"cannot start {os.path.basename(binlog_argv[0])}: {exc.strerror or exc}") from exc
        try:
            client = await open_tool(client_argv, stdout=subprocess.DEVNULL, env=env)
        except OSError as exc:
            await _reap(decoder)
            raise SourceError(f"cannot start {os.path.basename(client_tool)}: {exc.strerror or exc}") from exc
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_collect, decoder.stderr, decoder_err)
                tg.start_soon(_collect, client.stderr, client_err)
                assert decoder.stdout is not None and client.stdin is not None
                line = 0
                partial = b""
                broken = False
                async for data in decoder.stdout:
                    pieces = (partial + data).split(b"\n")
                    partial = pieces.pop()
                    for text in pieces:
                        line += 1
                        if text.startswith(b"# at "):
                            match = _AT.match(text)
                            if match:
                                markers_line.append(line)
                                markers_pos.append(int(match.group(1)))
                    if not broken:
                        try:
                            await client.stdin.send(data)
                        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                            broken = True  # the client quit; its status says why
                await client.stdin.aclose()
                await decoder.wait()
                await client.wait()
        finally:
            await _reap(decoder)
            await _reap(client)
    if decoder.returncode != 0:
        progress.failed_file = record.name
        detail = tail_lines(bytes(decoder_err))
        raise ReplayError(
            f"{os.path.basename(binlog_argv[0])} could not read binlog {record.name} (status {decoder.returncode})"
            + (f": {detail}" if detail else ""),
            progress,
        )
    if client.returncode != 0:
        detail = tail_lines(bytes(client_err))
        progress.failed_file = record.name
        found = _CLIENT_LINE.search(detail)
        if found:
            failed_line = int(found.group(1))
            position = None
            for marker_line, marker_pos in zip(markers_line, markers_pos, strict=True):
                if marker_line > failed_line:
                    break
                position = marker_pos
            progress.failed_position = position
        raise ReplayError(
            f"replaying binlog {record.name} into {endpoint.describe()} failed"
            + (f": {detail}" if detail else f" (status {client.returncode})"),
            progress,
        )


async def _collect(stream: ByteReceiveStream | None, into: bytearray) -> None:
    if stream is None:
        return
    async for data in stream:
        into += data
        if len(into) > 65536:
            del into[: len(into) - 65536]


async def _reap(process: anyio.abc.Process) -> None:
    with anyio.CancelScope(shield=True):
        kill_tool(process)
        await process.aclose()
