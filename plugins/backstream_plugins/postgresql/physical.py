"""The ``postgresql-physical`` source: physical base backups taken with ``pg_basebackup -Ft``.

Selected with ``backstream backup postgresql://... --physical`` (no URL scheme of its own). A
cluster without tablespaces is streamed from ``pg_basebackup -D -`` as one object ``base.tar``; a
cluster with tablespaces (pg_basebackup cannot write several tars to stdout) is spooled to a local
directory first and stored as ``base.tar``, one ``<oid>.tar`` per tablespace and
``backup_manifest``. The manifest records the start and stop LSN, the timeline, the WAL segments
needed for consistency and the tablespaces. With ``wal=none`` (the default) the WAL comes from the
archive that ``backstream wal-push`` fills, so archiving must work.

Options: ``wal`` none|fetch (``-X``), ``checkpoint`` fast|spread (fast), ``bindir``,
``connect_timeout`` seconds (10), ``max_rate`` (``-r``, e.g. 100M), ``tmpdir`` (where a cluster
with tablespaces is spooled; it needs room for the whole uncompressed backup).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from backstream import (
    ByteSource,
    ConfigError,
    JobContext,
    PipeChunks,
    SourceError,
    file_source,
    kill_tool,
    make_pipe,
    open_tool,
)

from backstream_plugins.postgresql.session import connect, import_psycopg

if TYPE_CHECKING:
    from backstream import DrillOutcome, Plugins, RestoreOutcome, RestoreRequest
    from backstream.jobs import KeyOptions
    from backstream.repository import Manifest, Repository
from backstream_plugins.postgresql.tablespace_map import parse_tablespace_map

_START = re.compile(r"^START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+)", re.MULTILINE)
_TIMELINE = re.compile(r"^START TIMELINE: (\d+)", re.MULTILINE)
_FROM = re.compile(r"^BACKUP FROM: (\w+)", re.MULTILINE)
WATCHED = ("backup_label", "backup_manifest")
"""Members of the tar stream read on the way through: the start LSN/timeline and the WAL range."""
MAX_WATCHED = 64 * 1024 * 1024
BASE_TAR = "base.tar"
MANIFEST_FILE = "backup_manifest"


class _TarWatcher:
    """Follows the ustar headers of a passing tar stream and keeps the bodies of the WATCHED members."""

    def __init__(self) -> None:
        self._pending = b""
        self._skip = 0  # body bytes (and padding) still to pass
        self._capture: bytearray | None = None
        self._capture_left = 0
        self._name = ""
        self._lost = False  # a header could not be read: stop watching (the data still passes unchanged)
        self.members: dict[str, bytes] = {}

    def feed(self, data: bytes) -> None:
        if self._lost:
            return
        view = memoryview(data)
        while view:
            if self._skip:
                take = min(self._skip, len(view))
                if self._capture is not None and self._capture_left:
                    keep = min(take, self._capture_left)
                    self._capture += view[:keep]
                    self._capture_left -= keep
                    if not self._capture_left:
                        self.members[self._name] = bytes(self._capture)
                        self._capture = None
                self._skip -= take
                view = view[take:]
                continue
            need = 512 - len(self._pending)
            self._pending += bytes(view[:need])
            view = view[need:]
            if len(self._pending) < 512:
                return
            header, self._pending = self._pending, b""
            if header == b"\0" * 512:
                continue
            name = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
            size = _tar_size(header[124:136])
            if size is None:
                self._lost = True
                return
            self._skip = (size + 511) // 512 * 512
            self._name = name.removeprefix("./")
            if self._name in WATCHED and size <= MAX_WATCHED:
                self._capture, self._capture_left = bytearray(), size
                if size == 0:
                    self.members[self._name] = b""
                    self._capture = None


def _tar_size(field: bytes) -> int | None:
    """A tar header's size field: octal, or base-256 for members of 8 GiB and more (PostgreSQL's
    tar writer uses it); None when it is neither."""
    if field[0] & 0x80:
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    try:
        return int(field.split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        return None


def _lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def _segment(lsn: int, timeline: int, segment_size: int) -> str:
    number = lsn // segment_size
    per = 0x100000000 // segment_size
    return f"{timeline:08X}{number // per:08X}{number % per:08X}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class PhysicalSource:
    """One cluster to back up with pg_basebackup (restores go through ``backstream restore --to-dir``)."""

    filename = "base.tar"

    def __init__(self, url: str, options: Mapping[str, str]) -> None:
        psycopg = import_psycopg()
        try:
            params: dict[str, Any] = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise ConfigError("invalid postgresql URL (check its syntax)") from exc
        self._password: str | None = params.pop("password", None)
        self._params = {k: str(v) for k, v in params.items() if v is not None}
        self._wal = options.get("wal") or "none"
        if self._wal not in ("none", "fetch"):
            raise ConfigError(f"postgresql-physical wal must be none or fetch, not {self._wal!r}")
        self._checkpoint = options.get("checkpoint") or "fast"
        if self._checkpoint not in ("fast", "spread"):
            raise ConfigError(f"postgresql-physical checkpoint must be fast or spread, not {self._checkpoint!r}")
        self._bindir = options.get("bindir") or None
        self._timeout = options.get("connect_timeout") or "10"
        self._max_rate = options.get("max_rate") or None
        self._tmpdir = options.get("tmpdir") or None

    def _where(self) -> str:
        host = self._params.get("host") or os.environ.get("PGHOST") or "localhost"
        port = self._params.get("port") or os.environ.get("PGPORT") or "5432"
        return f"{host}:{port}"

    async def _server_facts(self) -> dict[str, Any]:
        psycopg = import_psycopg()
        params = dict(self._params, connect_timeout=self._timeout)
        if self._password is not None:
            params["password"] = self._password
        try:
            async with await connect(describe=f"to PostgreSQL on {self._where()}", **params) as conn:
                (row,) = await conn.execute(
                    "SELECT current_setting('server_version'), current_setting('archive_mode'),"
                    " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),"
                    " (SELECT system_identifier::text FROM pg_control_system()),"
                    " (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))"
                )
                spaces = await conn.execute(
                    "SELECT oid::text, spcname, pg_tablespace_location(oid) FROM pg_tablespace"
                    " WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY oid"
                )
        except psycopg.Error as exc:
            raise SourceError(f"cannot connect to PostgreSQL on {self._where()}: {_one_line(exc)}") from exc
        assert row is not None
        return {
            "server_version": row[0],
            "archive_mode": row[1],
            "wal_segment_size": int(row[2]),
            "system_identifier": row[3],
            "tablespaces": [{"oid": oid, "name": name, "location": location} for oid, name, location in spaces],
        }

    def _tool(self) -> str:
        if self._bindir:
            path = Path(self._bindir) / "pg_basebackup"
            if not path.is_file():
                raise SourceError(f"pg_basebackup not found in bindir {self._bindir}")
            return str(path)
        found = shutil.which("pg_basebackup")
        if found is None:
            raise SourceError(
                "pg_basebackup not found on PATH; install the PostgreSQL client tools (postgresql-client)"
            )
        return found

    def dump(self, job: JobContext) -> ByteSource:
        """The base backup as one tar stream (a cluster with tablespaces needs ``dump_files``)."""
        return self._dump(job, None)

    def dump_files(self, job: JobContext) -> AbstractAsyncContextManager[AsyncIterator[tuple[str, ByteSource]]]:
        """The base backup as named files: ``base.tar`` streamed straight away when the cluster has
        no tablespaces; else ``base.tar``, ``<oid>.tar`` per tablespace and ``backup_manifest``,
        spooled by ``pg_basebackup -D DIR -Ft`` first."""
        return self._dump_files(job)

    @asynccontextmanager
    async def _dump_files(self, job: JobContext) -> AsyncIterator[AsyncIterator[tuple[str, ByteSource]]]:
        facts = await self._server_facts()
        self._check_archiving(facts)
        _check_tablespaces(facts["tablespaces"])
        if not facts["tablespaces"]:

            async def single() -> AsyncIterator[tuple[str, ByteSource]]:
                yield BASE_TAR, self._dump(job, facts)

            yield single()
            return
        spool: Path | None = None
        try:
            where = self._tmpdir
            try:  # (a cancellation just as this returns would leave an empty directory behind)
                spool = Path(
                    await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="backstream-base-", dir=where))
                )
            except OSError as exc:
                raise SourceError(
                    f"cannot make a spool directory in {where or 'the temporary directory'}: {exc}"
                ) from exc
            out = spool / "backup"
            async with self._pg_basebackup(job, str(out), stdout=subprocess.DEVNULL) as (process, failure):
                code = await process.wait()
                if code != 0:
                    raise failure(code)
            names = sorted(await anyio.to_thread.run_sync(os.listdir, out))
            members = await anyio.to_thread.run_sync(_spooled_members, out)
            # What pg_basebackup wrote is the truth (a tablespace may have come or gone since the
            # query): one <oid>.tar per tablespace_map line with an absolute path.
            spaces = _spooled_tablespaces(members, facts["tablespaces"])
            expected = {BASE_TAR, MANIFEST_FILE, *(f"{space['oid']}.tar" for space in spaces)}
            if set(names) != expected:
                raise SourceError(f"pg_basebackup wrote {', '.join(names)}; expected {', '.join(sorted(expected))}")
            self._record(job, {**facts, "tablespaces": spaces}, members)

            async def files() -> AsyncIterator[tuple[str, ByteSource]]:
                for name in names:
                    yield name, file_source(out / name)

            yield files()
        finally:
            if spool is not None:
                with anyio.CancelScope(shield=True):  # a whole uncompressed copy of the cluster
                    await anyio.to_thread.run_sync(lambda: shutil.rmtree(spool, ignore_errors=True))

    def _check_archiving(self, facts: dict[str, Any]) -> None:
        if self._wal == "none" and facts["archive_mode"] == "off":
            raise SourceError(
                "archive_mode is off, so the WAL this base backup needs would not be archived; "
                "set it up with: backstream pitr setup URL --repo REPO (or use -o wal=fetch)"
            )

    @asynccontextmanager
    async def _pg_basebackup(
        self, job: JobContext, directory: str, *, stdout: int
    ) -> AsyncIterator[tuple[Any, Callable[[int | None], SourceError]]]:
        """Run ``pg_basebackup -D directory -Ft`` (``-`` for stdout); yields the process and the
        function that turns its exit status into an error naming what it printed. On leaving, the
        tool is killed if it still runs."""
        psycopg = import_psycopg()
        conninfo = str(psycopg.conninfo.make_conninfo("", **self._params))
        argv = [self._tool(), "--no-password", "-d", conninfo, "-D", directory, "-Ft", "-X", self._wal]
        argv += ["-v", "-c", self._checkpoint]
        argv += ["-l", f"backstream {job.job_id}"]
        if self._max_rate:
            argv += ["-r", self._max_rate]
        env = dict(os.environ)
        if self._password is not None:
            env["PGPASSWORD"] = self._password
        env.setdefault("PGCONNECT_TIMEOUT", self._timeout)
        with tempfile.TemporaryFile() as errors:
            try:
                process = await open_tool(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=errors, env=env)
            except OSError as exc:
                raise SourceError(f"cannot run pg_basebackup: {exc.strerror or exc}") from exc

            def failure(code: int | None) -> SourceError:
                errors.seek(0)
                lines = [ln.strip() for ln in errors.read()[-16384:].decode("utf-8", "replace").splitlines()]
                detail = " | ".join(ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower())[:800]
                status = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
                return SourceError(f"pg_basebackup failed ({status})" + (f": {detail}" if detail else ""))

            try:
                yield process, failure
            finally:
                with anyio.CancelScope(shield=True):
                    kill_tool(process)
                    await process.aclose()

    @asynccontextmanager
    async def _dump(self, job: JobContext, facts: dict[str, Any] | None) -> AsyncIterator[AsyncIterator[bytes]]:
        if facts is None:
            facts = await self._server_facts()
            self._check_archiving(facts)
            _check_tablespaces(facts["tablespaces"])
        if facts["tablespaces"]:
            raise SourceError(
                "the cluster has tablespaces besides pg_default/pg_global: pg_basebackup cannot stream "
                "them as one tar; back it up with dump_files() (backstream backup --physical does)"
            )
        read_fd, write_fd = make_pipe()
        try:
            async with self._pg_basebackup(job, "-", stdout=write_fd) as (process, failure):
                os.close(write_fd)  # pg_basebackup holds the write end: EOF comes when it exits
                write_fd = -1
                watcher = _TarWatcher()
                chunks = PipeChunks(read_fd, observe=watcher.feed)  # read off the event loop by the pipeline
                yield chunks
                if not chunks.at_end:
                    raise SourceError("the base backup was abandoned before pg_basebackup finished")
                code = await process.wait()
                if code != 0:
                    raise failure(code)
                self._record(job, facts, watcher.members)
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)

    def _record(self, job: JobContext, facts: dict[str, Any], members: dict[str, bytes]) -> None:
        label = members.get("backup_label", b"").decode("utf-8", "replace")
        start, tl = _START.search(label), _TIMELINE.search(label)
        if not start or not tl:
            raise SourceError("the base backup stream has no readable backup_label (START WAL LOCATION)")
        timeline, size = int(tl.group(1)), facts["wal_segment_size"]
        stop_text: str | None = None
        try:
            ranges = json.loads(members.get("backup_manifest", b"{}")).get("WAL-Ranges") or []
            stop_text = str(ranges[-1]["End-LSN"]) if ranges else None
        except (ValueError, KeyError, TypeError, AttributeError):
            stop_text = None
        if stop_text is None:
            raise SourceError("the base backup stream has no readable backup_manifest WAL range (stop LSN)")
        start_lsn, stop_lsn = _lsn(start.group(1)), _lsn(stop_text)
        job.metadata.update(
            {
                "server_version": facts["server_version"],
                "system_identifier": facts["system_identifier"],
                "format": "tar",
                "wal_method": self._wal,
                "backup_from": match.group(1) if (match := _FROM.search(label)) else None,
                "start_lsn": start.group(1),
                "stop_lsn": stop_text,
                "timeline": timeline,
                "wal_segment_size": size,
                "start_wal": _segment(start_lsn, timeline, size),
                "stop_wal": _segment(stop_lsn, timeline, size),
                "tablespaces": facts["tablespaces"],
            }
        )

    async def restore(self, data: AsyncIterator[bytes], job: JobContext) -> None:
        raise ConfigError("physical backups restore into a data directory: backstream restore ID --to-dir DATADIR")


def _check_tablespaces(spaces: list[dict[str, str]]) -> None:
    """Refuse in-place tablespaces (``allow_in_place_tablespaces``, a setting for tests): their
    location is inside pg_tblspc, and pg_basebackup leaves their files out of the backup."""
    inplace = [space["name"] for space in spaces if not os.path.isabs(space["location"])]
    if inplace:
        raise SourceError(
            f"tablespace(s) {', '.join(inplace)} are in-place tablespaces (allow_in_place_tablespaces), whose "
            "files pg_basebackup does not back up; move their tables to a real tablespace first"
        )


def _spooled_tablespaces(members: dict[str, bytes], queried: list[dict[str, str]]) -> list[dict[str, str]]:
    """The tablespaces of a spooled backup, from its base.tar's tablespace_map (names from the query)."""
    names = {space["oid"]: space["name"] for space in queried}
    spaces = []
    for oid, path in parse_tablespace_map(members.get("tablespace_map", b"")):
        location = os.fsdecode(path)
        _check_tablespaces([{"name": names.get(oid, oid), "location": location}])  # one made meanwhile
        spaces.append({"oid": oid, "name": names.get(oid, ""), "location": location})
    return spaces


def _spooled_members(directory: Path) -> dict[str, bytes]:
    """``backup_label`` and ``tablespace_map`` from a spooled ``base.tar``, and the
    ``backup_manifest`` file beside it."""
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(directory / BASE_TAR, "r:") as archive:
            for name in ("backup_label", "tablespace_map"):
                try:
                    member = archive.extractfile(name)
                except KeyError:
                    continue
                if member is not None:
                    members[name] = member.read(MAX_WATCHED)
    except (tarfile.TarError, OSError) as exc:
        raise SourceError(f"cannot read the spooled base.tar: {exc}") from exc
    try:
        with open(directory / MANIFEST_FILE, "rb") as manifest:
            members["backup_manifest"] = manifest.read(MAX_WATCHED)
    except OSError as exc:
        raise SourceError(f"cannot read the spooled backup_manifest: {exc.strerror or exc}") from exc
    return members


class PhysicalFactory:
    """No URL scheme of its own: chosen by ``backstream backup postgresql://... --physical``.

    Its backups restore into a data directory (a ``RestorePath``: ``restore --to-dir``) and are
    drilled in a scratch directory with a throwaway server (a ``RestoreDrill``)."""

    name = "postgresql-physical"
    schemes: frozenset[str] = frozenset()

    def open(self, url: str, options: Mapping[str, str]) -> PhysicalSource:
        return PhysicalSource(url, options)

    def claims(self, request: RestoreRequest) -> bool:
        from backstream_plugins.postgresql.restore import claims_directory

        return claims_directory(request)

    async def restore_backup(self, request: RestoreRequest, plugins: Plugins) -> RestoreOutcome:
        from backstream_plugins.postgresql.restore import restore_physical  # its tools only when needed

        return await restore_physical(request, plugins)

    async def drill(
        self,
        manifest: Manifest,
        repository: Repository,
        *,
        repo_url: str,
        level: str,
        plugins: Plugins,
        keys: KeyOptions,
        storage_options: Mapping[str, Any] | None = None,
        scratch: str | None = None,
    ) -> DrillOutcome:
        from backstream import DrillOutcome

        from backstream_plugins.postgresql.drill import physical_drill  # its tools only when needed

        drill = await physical_drill(
            manifest, repository, repo_url, level=level, plugins=plugins, keys=keys,
            storage_options=storage_options, scratch=scratch,
        )  # fmt: skip
        return DrillOutcome(tuple(drill.results), drill.restore_seconds, {"databases": drill.databases})
