"""The ``postgresql`` source: logical backups with pg_dump (plain, custom, directory) and restores.

psycopg does the control work (connection check, server version, WAL LSNs, target checks); the
PostgreSQL client tools move the data. Passwords reach the tools only through PGPASSWORD; the
tools run with --no-password, so a missing password fails at once instead of waiting for a prompt.

URL: ``postgresql://user[:password]@host:port/dbname[?libpq-params]`` (``postgres://`` too);
without a password in the URL, libpq's PGPASSWORD, ~/.pgpass and PG* environment apply.

Options (strings): ``format`` plain|custom|directory (dump; restore detects it), ``jobs`` N
(parallel directory dump, parallel custom/directory restore), ``force`` (restore over a
non-empty database by replacing it), ``no_owner``, ``no_privileges``, ``bindir`` (where
pg_dump/psql/pg_restore live), ``connect_timeout`` seconds (10), ``maintenance_db`` (postgres),
``tmpdir`` (spool directory for directory format and parallel restores).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.abc import Process
from backstream import (
    ByteSource,
    Codec,
    ConfigError,
    JobContext,
    PipeChunks,
    SourceError,
    file_sink,
    file_source,
    kill_tool,
    make_pipe,
    open_tool,
    primary_error,
    split,
)

from backstream_plugins.postgresql.copy_content import CopyContent
from backstream_plugins.postgresql.session import PgSession, connect, import_psycopg

if TYPE_CHECKING:
    from backstream import Plugins, RestoreOutcome, RestoreRequest

FORMATS = ("plain", "custom", "directory")
READ_SIZE = 256 * 1024
"""Bytes asked for per read of a tool's stdout (the chunks handed on are cut to CHUNK_SIZE)."""
STDERR_LIMIT = 16 * 1024
"""Bytes of a tool's stderr kept for the error message; older output is dropped."""
END_MARK = b"-- PostgreSQL database dump complete"
"""The comment every complete plain dump (and pg_restore script) ends with."""
CUSTOM_MAGIC = b"PGDMP"
FILE_NAMES = {"plain": "dump.sql", "custom": "dump.pgdump"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


# --- options and connection parameters -------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    format: str | None
    jobs: int
    force: bool
    no_owner: bool
    no_privileges: bool
    bindir: str | None
    connect_timeout: int
    maintenance_db: str
    tmpdir: str | None


def _settings(options: Mapping[str, str]) -> _Settings:
    fmt = options.get("format") or None
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"postgresql format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return _Settings(
        format=fmt,
        jobs=_int_option(options, "jobs", 1, 1, 64),
        force=_bool_option(options, "force"),
        no_owner=_bool_option(options, "no_owner"),
        no_privileges=_bool_option(options, "no_privileges"),
        bindir=options.get("bindir") or None,
        connect_timeout=_int_option(options, "connect_timeout", 10, 1, 3600),
        maintenance_db=options.get("maintenance_db") or "postgres",
        tmpdir=options.get("tmpdir") or None,
    )


def _int_option(options: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = options.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"postgresql {key} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"postgresql {key} must be between {low} and {high}, not {value}")
    return value


def _bool_option(options: Mapping[str, str], key: str) -> bool:
    raw = str(options.get(key, "")).strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"postgresql {key} must be true or false, not {raw!r}")


class _Conn:
    """Connection parameters split into the non-secret part and the password."""

    def __init__(self, url: str) -> None:
        psycopg = import_psycopg()
        try:
            params: dict[str, Any] = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise ConfigError("invalid postgresql URL (check its syntax)") from exc
        self.password: str | None = params.pop("password", None)
        self.params = {key: str(value) for key, value in params.items() if value is not None}

    @property
    def dbname(self) -> str | None:
        return self.params.get("dbname") or None

    def describe(self, dbname: str | None = None) -> str:
        """``database 'x' on host:port`` for messages; never the password."""
        host = self.params.get("host") or os.environ.get("PGHOST") or "localhost"
        port = self.params.get("port") or os.environ.get("PGPORT") or "5432"
        name = dbname or self.dbname or "(default)"
        return f"database {name!r} on {host}:{port}"

    def conninfo(self, dbname: str | None = None) -> str:
        """A libpq conninfo string without the password, safe for a command line."""
        psycopg = import_psycopg()
        params = dict(self.params)
        if dbname is not None:
            params["dbname"] = dbname
        return str(psycopg.conninfo.make_conninfo("", **params))

    def env(self, settings: _Settings) -> dict[str, str]:
        """The environment for a client tool: the password only here, never in argv."""
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        env.setdefault("PGCONNECT_TIMEOUT", str(settings.connect_timeout))
        return env

    def dump_env(self, settings: _Settings) -> dict[str, str]:
        """``env`` for pg_dump, with the session in UTC: timestamptz values then come out the same
        whatever the server's or the client's time zone (the same instants either way), so the
        COPY data of a table, and its content checksum, can be compared across servers."""
        return {**self.env(settings), "PGTZ": "UTC"}

    async def connect(self, settings: _Settings, dbname: str | None = None) -> PgSession:
        """An autocommit session (psycopg in worker threads, so any anyio backend); connection
        failures become one-line SourceErrors."""
        params = dict(self.params)
        if dbname is not None:
            params["dbname"] = dbname
        if self.password is not None:
            params["password"] = self.password
        params["connect_timeout"] = str(settings.connect_timeout)
        return await connect(describe=f"to {self.describe(dbname)}", **params)


def data_dump_command(url: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment of ``pg_dump --data-only`` (plain format) of ``url``'s database, run
    the way backups run pg_dump; the password stays in the environment."""
    conn = _Conn(url)
    settings = _settings({})
    argv = [
        _tool_path("pg_dump", settings),
        "--data-only",
        "--format=plain",
        "--no-password",
        "--dbname=" + conn.conninfo(),
    ]
    return argv, conn.dump_env(settings)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text.removeprefix("connection failed: ") or type(exc).__name__


# --- client tools ------------------------------------------------------------------------------


def _tool_path(name: str, settings: _Settings) -> str:
    if settings.bindir:
        path = Path(settings.bindir) / name
        if not path.is_file():
            raise SourceError(f"{name} not found in bindir {settings.bindir}")
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise SourceError(
            f"{name} not found on PATH; install the PostgreSQL client tools (Debian: postgresql-client) "
            "or set the postgresql bindir option"
        )
    return found


class _StderrTail:
    """Drains a child's stderr in a thread, keeping only the last STDERR_LIMIT bytes."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._data = bytearray()
        self._thread = threading.Thread(target=self._drain, name="backstream-pg-stderr", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        with open(self._fd, "rb", buffering=0) as stream:
            while True:
                data = stream.read(65536)
                if not data:
                    return
                self._data += data
                if len(self._data) > STDERR_LIMIT:
                    del self._data[:-STDERR_LIMIT]

    async def join(self) -> None:
        await anyio.to_thread.run_sync(self._thread.join, 10.0)

    def summary(self) -> str:
        """The end of stderr on one line, starting at its first error line if it has one."""
        lines = [line.strip() for line in bytes(self._data).decode("utf-8", "replace").splitlines()]
        tail = [line for line in lines if line][-8:]
        for index, line in enumerate(tail):
            if "error" in line.lower() or "fatal" in line.lower():
                tail = tail[index:]
                break
        text = " | ".join(tail[:5])
        return text if len(text) <= 800 else text[:797] + "..."


class _Tool:
    """One running client tool: stdin/stdout as asked, stderr drained into a bounded tail."""

    def __init__(self, name: str, process: Process, stderr: _StderrTail) -> None:
        self.name = name
        self.process = process
        self.stderr = stderr

    async def write(self, data: bytes) -> bool:
        """Send ``data`` to stdin; False when the tool no longer reads (it exited)."""
        assert self.process.stdin is not None
        try:
            await self.process.stdin.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return False
        return True

    async def close_input(self) -> None:
        if self.process.stdin is not None:
            try:
                await self.process.stdin.aclose()
            except (anyio.BrokenResourceError, OSError):
                pass

    async def wait(self) -> int:
        """Wait for the exit status (and the end of its stderr)."""
        code = await self.process.wait()
        await self.stderr.join()
        return code

    async def output(self) -> AsyncGenerator[bytes, None]:
        """Stdout in chunks; at EOF the exit status is checked, and a failure raises SourceError."""
        assert self.process.stdout is not None
        while True:
            try:
                data = await self.process.stdout.receive(READ_SIZE)
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                break
            for piece in split(data):
                yield piece
        code = await self.wait()
        if code != 0:
            raise self.error(code)

    def error(self, code: int | None = None) -> SourceError:
        if code is None:
            code = self.process.returncode
        if code is not None and code < 0:
            status = f"killed by signal {-code}"
        else:
            status = f"exit status {code}"
        detail = self.stderr.summary()
        return SourceError(f"{self.name} failed ({status})" + (f": {detail}" if detail else ""))


@asynccontextmanager
async def _run_tool(
    name: str, argv: list[str], env: Mapping[str, str], *, stdin: int | None, stdout: int | None
) -> AsyncIterator[_Tool]:
    """Start a tool; on leaving, kill it if it still runs (a consumer stopped or failed)."""
    read_fd, write_fd = os.pipe()
    try:
        process = await open_tool(argv, stdin=stdin, stdout=stdout, stderr=write_fd, env=dict(env))
    except BaseException as exc:  # also a cancellation: the read end would leak
        os.close(read_fd)
        if isinstance(exc, OSError):
            raise SourceError(f"cannot run {name}: {exc.strerror or exc}") from exc
        raise
    finally:
        os.close(write_fd)
    tool = _Tool(name, process, _StderrTail(read_fd))
    try:
        yield tool
    finally:
        with anyio.CancelScope(shield=True):
            kill_tool(process)
            try:
                await process.aclose()
            except (anyio.BrokenResourceError, OSError):
                pass
            await tool.stderr.join()


VERSION_SECONDS = 5.0
"""How long ``pg_dump --version`` may take to answer before the manifest records no version."""


@asynccontextmanager
async def _tool_version(path: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Start ``path --version`` now and yield the function that reads its answer: the probe runs
    while the block connects and dumps, instead of before them (it took ~10 ms of start-up)."""
    try:
        process = await anyio.open_process([path, "--version"], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as exc:  # e.g. a bindir whose pg_dump is not executable
        raise SourceError(f"cannot run {path}: {exc.strerror or exc}") from exc

    async def answer() -> str:
        """The version line; empty if the tool has not answered within VERSION_SECONDS."""
        assert process.stdout is not None
        output = b""
        with anyio.move_on_after(VERSION_SECONDS):
            async for piece in process.stdout:
                output += piece[: 4096 - len(output)]  # a version line; never keep more than a page
            await process.wait()
        return output.decode("utf-8", "replace").strip()

    try:
        yield answer
    finally:
        with anyio.CancelScope(shield=True):
            kill_tool(process)
            await process.aclose()


# --- the source ------------------------------------------------------------------------------


_SIZE_QUERY = "SELECT pg_database_size(current_database())"

_SERVER_QUERY = """
SELECT current_database(), current_setting('server_version'), current_setting('server_version_num')::int,
       pg_is_in_recovery(),
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,
       inet_server_addr()::text, inet_server_port()
"""

_USER_OBJECTS_QUERY = """
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname !~ '^pg_(toast|temp_)')
     + (SELECT count(*) FROM pg_namespace
        WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND nspname !~ '^pg_(toast|temp_)')
"""


class PostgresSource:
    """One PostgreSQL database: dumped with pg_dump, restored with psql or pg_restore."""

    def __init__(self, url: str, options: Mapping[str, str]) -> None:
        self._conn = _Conn(url)
        self._options = dict(options)

    def _settings(self, job: JobContext) -> _Settings:
        return _settings({**self._options, **job.options})

    # --- dump -----------------------------------------------------------------------------

    def dump(self, job: JobContext) -> ByteSource:
        """pg_dump in plain (default) or custom format as one stream of chunks."""
        return self._dump(job)

    def content_tap(self, job: JobContext) -> Codec | None:
        """For a plain dump recorded with a standard or comprehensive catalog: a pass-through
        codec that counts every table's rows (and at comprehensive, checksums its COPY data)
        as the dump streams by, so the catalog needs no second read of the database and
        describes exactly the rows in the backup."""
        if (self._settings(job).format or "plain") != "plain":
            return None
        if job.catalog_level not in ("standard", "comprehensive"):
            return None
        return CopyContent(checksums=job.catalog_level == "comprehensive", into=job.content)

    @asynccontextmanager
    async def _dump(self, job: JobContext) -> AsyncIterator[AsyncIterator[bytes]]:
        settings = self._settings(job)
        fmt = settings.format or "plain"
        if fmt == "directory":
            raise ConfigError("the directory format produces several files: use dump_files(), not dump()")
        pg_dump = _tool_path("pg_dump", settings)
        async with _tool_version(pg_dump) as tool_version:
            dbname = await self._record_start(job, settings, fmt)
            argv = [
                pg_dump,
                "--format=" + fmt,
                *self._dump_flags(settings, fmt),
                "--no-password",
                "--dbname=" + self._conn.conninfo(dbname),
            ]
            read_fd, write_fd = make_pipe()
            try:
                tool_context = _run_tool(
                    "pg_dump", argv, self._conn.dump_env(settings), stdin=subprocess.DEVNULL, stdout=write_fd
                )
                async with tool_context as tool:
                    os.close(write_fd)  # pg_dump holds the write end now: EOF comes when it exits
                    write_fd = -1
                    # Read while pg_dump starts (the probe has answered by now): a failed backup's
                    # record names the pg_dump too, the likeliest clue (one older than the server).
                    job.metadata["dump_tool"] = await tool_version()
                    chunks = PipeChunks(read_fd)
                    yield chunks
                    if not chunks.at_end:
                        raise SourceError(
                            "the dump was abandoned before pg_dump finished; nothing complete was produced"
                        )
                    code = await tool.wait()
                    if code != 0:
                        raise tool.error(code)
            finally:
                os.close(read_fd)
                if write_fd >= 0:
                    os.close(write_fd)
        await self._record_stop(job, settings, dbname)

    def dump_files(self, job: JobContext) -> AbstractAsyncContextManager[AsyncIterator[tuple[str, ByteSource]]]:
        """The dump as named files: ``(relative name, ByteSource)`` pairs, one pipeline each.

        Directory format runs ``pg_dump -Fd -j N`` into a spool directory and yields its files
        once pg_dump succeeded; plain and custom yield a single file streamed straight away.
        """
        return self._dump_files(job)

    @asynccontextmanager
    async def _dump_files(self, job: JobContext) -> AsyncIterator[AsyncIterator[tuple[str, ByteSource]]]:
        settings = self._settings(job)
        fmt = settings.format or "plain"
        if fmt != "directory":

            async def single() -> AsyncIterator[tuple[str, ByteSource]]:
                yield FILE_NAMES[fmt], self.dump(job)

            yield single()
            return
        pg_dump = _tool_path("pg_dump", settings)
        async with _tool_version(pg_dump) as tool_version:
            dbname = await self._record_start(job, settings, fmt)
            job.metadata["dump_tool"] = await tool_version()
        spool = await _make_spool(settings)
        try:
            out = spool / "dump"
            argv = [
                pg_dump,
                "--format=directory",
                f"--jobs={settings.jobs}",
                *self._dump_flags(settings, fmt),
                "--file=" + str(out),
                "--no-password",
                "--dbname=" + self._conn.conninfo(dbname),
            ]
            env = self._conn.dump_env(settings)
            async with _run_tool("pg_dump", argv, env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL) as tool:
                code = await tool.wait()
                if code != 0:
                    raise tool.error(code)
            await self._record_stop(job, settings, dbname)
            names = sorted(await anyio.to_thread.run_sync(os.listdir, out))

            async def files() -> AsyncIterator[tuple[str, ByteSource]]:
                for name in names:
                    yield name, file_source(out / name)

            yield files()
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(spool, ignore_errors=True))

    @staticmethod
    def _dump_flags(settings: _Settings, fmt: str) -> list[str]:
        flags = []
        if fmt != "plain":
            flags.append("--compress=0")  # backstream compresses; pg_dump's zlib would only cost CPU
        if settings.no_owner:
            flags.append("--no-owner")
        if settings.no_privileges:
            flags.append("--no-privileges")
        return flags

    async def estimated_size(self) -> int | None:
        """``pg_database_size`` of the database (``SizedSource``): a rough guess at the dump's
        size, which leaves out indexes and free space but spells values out as text."""
        conn = await self._conn.connect(_settings(self._options), self._conn.dbname)
        try:
            (row,) = await conn.execute(_SIZE_QUERY)
        except import_psycopg().Error as exc:
            raise SourceError(f"cannot query {self._conn.describe()}: {_one_line(exc)}") from exc
        finally:
            await conn.close()
        return None if row[0] is None else int(row[0])

    async def _server_state(self, settings: _Settings, dbname: str | None) -> tuple[Any, ...]:
        conn = await self._conn.connect(settings, dbname)
        try:
            (row,) = await conn.execute(_SERVER_QUERY)
        except import_psycopg().Error as exc:
            raise SourceError(f"cannot query {self._conn.describe(dbname)}: {_one_line(exc)}") from exc
        finally:
            await conn.close()
        return tuple(row)

    async def _record_start(self, job: JobContext, settings: _Settings, fmt: str) -> str:
        """Check the connection and record what the manifest needs; returns the database name."""
        state = await self._server_state(settings, self._conn.dbname)
        database, version, version_num, in_recovery, lsn, address, port = state
        job.metadata.update(
            {
                "kind": "postgresql",
                "database": database,
                "server_version": version,
                "server_version_num": version_num,
                "server_address": address,
                "server_port": port,
                "in_recovery": in_recovery,
                "format": fmt,
                "jobs": settings.jobs if fmt == "directory" else 1,
                "wal_lsn_start": lsn,
            }
        )
        return str(database)

    async def _record_stop(self, job: JobContext, settings: _Settings, dbname: str) -> None:
        state = await self._server_state(settings, dbname)
        job.metadata["wal_lsn_stop"] = state[4]

    # --- restore ----------------------------------------------------------------------------

    async def restore(self, data: AsyncIterator[bytes], job: JobContext) -> None:
        """Restore a plain or custom dump into the URL's database, atomically.

        The format is detected from the data (custom archives start with ``PGDMP``). The target
        is created if missing; a non-empty target is refused unless ``force``, which replaces it.
        """
        settings = self._settings(job)
        target = self._target_name()
        first = await _first_chunk(data)
        if first is None:
            raise SourceError("the backup to restore is empty")
        fmt = settings.format or ("custom" if first.startswith(CUSTOM_MAGIC) else "plain")
        if fmt == "directory":
            raise ConfigError("a directory-format backup has several files: use restore_files()")
        stream = _prepend(first, data)
        parallel = fmt == "custom" and settings.jobs > 1

        async def apply(dbname: str) -> None:
            if parallel:
                await self._restore_spooled(stream, dbname, settings, fmt)
            elif fmt == "custom":
                await self._apply_custom(stream, dbname, settings)
            else:
                await self._apply_sql(stream, dbname, settings)

        await self._restore_into(target, settings, job, apply, scratch=parallel)

    async def restore_files(self, files: AsyncIterable[tuple[str, ByteSource]], job: JobContext) -> None:
        """Restore what ``dump_files`` produced: a directory-format set is spooled to a
        temporary directory (pg_restore needs every file), then restored with ``pg_restore -j N``
        into a scratch database that replaces the target; a single file streams like ``restore``."""
        settings = self._settings(job)
        target = self._target_name()
        iterator = aiter(files)
        first = await anext(iterator, None)
        if first is None:
            raise SourceError("the backup to restore has no files")
        second = await anext(iterator, None)
        if second is None and first[0] != "toc.dat":
            async with first[1] as chunks:
                await self.restore(chunks, job)
            return

        spool = await _make_spool(settings)
        try:
            directory = spool / "dump"
            await anyio.to_thread.run_sync(directory.mkdir)

            async def pairs() -> AsyncIterator[tuple[str, ByteSource]]:
                yield first
                if second is not None:
                    yield second
                async for pair in iterator:
                    yield pair

            async for name, source in pairs():
                if not _SAFE_NAME.match(name):
                    raise SourceError(f"refusing to restore a file with an unsafe name: {name!r}")
                async with source as chunks, file_sink(directory / name, fsync=False) as writer:
                    async for chunk in chunks:
                        await writer.write(chunk)
            if not (directory / "toc.dat").exists():
                raise SourceError("the directory-format backup has no toc.dat")

            async def apply(dbname: str) -> None:
                await self._pg_restore_path(directory, dbname, settings)

            await self._restore_into(target, settings, job, apply, scratch=True)
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(spool, ignore_errors=True))

    def _target_name(self) -> str:
        target = self._conn.dbname
        if not target:
            raise ConfigError(
                "the postgresql restore target URL must name a database: postgresql://user@host:port/dbname"
            )
        return target

    async def _restore_into(
        self,
        target: str,
        settings: _Settings,
        job: JobContext,
        apply: Callable[[str], Awaitable[None]],
        *,
        scratch: bool,
    ) -> None:
        """Run ``apply`` on a database so that a failure leaves ``target`` as it was.

        One transaction into the target itself (created first if missing, dropped again on
        failure); or, for parallel restores and ``force`` over a non-empty target, into a
        scratch database that is renamed into place only after everything succeeded.
        """
        admin = await self._conn.connect(settings, settings.maintenance_db)
        try:
            exists = await _fetch_value(admin, "SELECT count(*) FROM pg_database WHERE datname = %s", (target,)) > 0
            if exists:
                objects = await self._count_user_objects(settings, target)
                if objects and not settings.force:
                    raise SourceError(
                        f"the target {self._conn.describe(target)} is not empty ({objects} schemas/relations); "
                        "restore into a new database, or use --force to replace it"
                    )
                scratch = scratch or objects > 0
                if scratch:
                    await self._refuse_if_in_use(admin, target)
            job.metadata.update({"target_database": target, "replaced": exists and scratch, "created": not exists})
            if not scratch:
                if not exists:
                    await _create_database(admin, target)
                try:
                    await apply(target)
                except BaseException:
                    if not exists:
                        await _drop_quietly(admin, target)
                    raise
                return
            scratch_name = _scratch_name(target)
            await _create_database(admin, scratch_name)
            try:
                await apply(scratch_name)
                await self._swap_in(admin, target, scratch_name, exists)
            except BaseException:
                await _drop_quietly(admin, scratch_name)
                raise
        finally:
            with anyio.CancelScope(shield=True):
                await admin.close()

    async def _count_user_objects(self, settings: _Settings, dbname: str) -> int:
        conn = await self._conn.connect(settings, dbname)
        try:
            return await _fetch_value(conn, _USER_OBJECTS_QUERY, ())
        finally:
            await conn.close()

    async def _refuse_if_in_use(self, admin: Any, target: str) -> None:
        """Replacing a database renames it, which needs it unused: say so before a long restore.
        Sessions that are just closing (our own inspection included) get a few seconds to end."""
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
        with anyio.move_on_after(5):
            while await _fetch_value(admin, query, (target,)):
                await anyio.sleep(0.1)
            return
        sessions = await _fetch_value(admin, query, (target,))
        if sessions:
            raise SourceError(
                f"cannot replace {self._conn.describe(target)}: {sessions} other sessions are connected to it"
            )

    async def _swap_in(self, admin: Any, target: str, scratch: str, exists: bool) -> None:
        """Rename ``scratch`` to ``target`` in one transaction (the old target is dropped after)."""
        psycopg = import_psycopg()
        sql = psycopg.sql
        old = _scratch_name(target, "old")
        try:
            rename = sql.SQL("ALTER DATABASE {} RENAME TO {}")
            moves = [rename.format(sql.Identifier(target), sql.Identifier(old))] if exists else []
            moves.append(rename.format(sql.Identifier(scratch), sql.Identifier(target)))
            await admin.execute_in_transaction(moves)
        except psycopg.Error as exc:
            raise SourceError(
                f"cannot put the restored database in place of {self._conn.describe(target)} "
                f"(are other sessions connected to it?): {_one_line(exc)}"
            ) from exc
        if exists:
            await _drop_quietly(admin, old)

    async def _apply_sql(self, sql_stream: AsyncIterator[bytes], dbname: str, settings: _Settings) -> None:
        """Pipe SQL into psql inside BEGIN ... COMMIT; COMMIT is sent only after the whole
        stream arrived and ended like a complete dump. Any failure kills psql: the server rolls
        the transaction back (so does our own death: psql then sees EOF without COMMIT)."""
        await self._psql(sql_stream, dbname, settings, before_commit=None)

    async def _psql(
        self,
        sql_stream: AsyncIterator[bytes],
        dbname: str,
        settings: _Settings,
        *,
        before_commit: Callable[[], Awaitable[None]] | None,
    ) -> None:
        argv = [
            _tool_path("psql", settings),
            "--no-psqlrc",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            "--file=-",
            "--no-password",
            "--dbname=" + self._conn.conninfo(dbname),
        ]
        async with _run_tool(
            "psql", argv, self._conn.env(settings), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
        ) as psql:
            alive = await psql.write(b"BEGIN;\n")
            tail = b""
            if alive:
                async for chunk in sql_stream:
                    tail = (tail + chunk)[-1024:] if len(chunk) < 1024 else chunk[-1024:]
                    if not await psql.write(chunk):
                        alive = False
                        break
            if alive:
                if END_MARK not in tail:
                    raise SourceError(
                        "the SQL dump is incomplete (it lacks pg_dump's end marker); nothing was restored"
                    )
                if before_commit is not None:
                    await before_commit()
                alive = await psql.write(b"\nCOMMIT;\n")
            await psql.close_input()
            code = await psql.wait()
            if code != 0 or not alive:
                raise psql.error(code)

    async def _apply_custom(self, data: AsyncIterator[bytes], dbname: str, settings: _Settings) -> None:
        """A custom archive: ``pg_restore -f -`` turns it into SQL, which psql applies in one
        transaction, committed only after the archive was read to its end without error."""
        argv = [_tool_path("pg_restore", settings), "--file=-", *self._restore_flags(settings)]
        env = self._conn.env(settings)
        async with _run_tool("pg_restore", argv, env, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as converter:
            fed = anyio.Event()

            async def feed() -> None:
                reading = True
                async for chunk in data:  # read to the end even if pg_restore stopped early
                    if reading and not await converter.write(chunk):
                        reading = False
                await converter.close_input()
                fed.set()

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(feed)
                    await self._psql(converter.output(), dbname, settings, before_commit=fed.wait)
            except BaseExceptionGroup as group:
                error = primary_error(group)
                raise error from error.__cause__

    async def _restore_spooled(self, data: AsyncIterator[bytes], dbname: str, settings: _Settings, fmt: str) -> None:
        """``pg_restore -j N`` needs a seekable file: spool the archive, then restore from it."""
        spool = await _make_spool(settings)
        try:
            path = spool / FILE_NAMES[fmt]
            async with file_sink(path, fsync=False) as writer:
                async for chunk in data:
                    await writer.write(chunk)
            await self._pg_restore_path(path, dbname, settings)
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(spool, ignore_errors=True))

    async def _pg_restore_path(self, path: Path, dbname: str, settings: _Settings) -> None:
        argv = [
            _tool_path("pg_restore", settings),
            f"--jobs={settings.jobs}",
            "--exit-on-error",
            *self._restore_flags(settings),
            "--no-password",
            "--dbname=" + self._conn.conninfo(dbname),
            str(path),
        ]
        env = self._conn.env(settings)
        async with _run_tool("pg_restore", argv, env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL) as tool:
            code = await tool.wait()
            if code != 0:
                raise tool.error(code)

    @staticmethod
    def _restore_flags(settings: _Settings) -> list[str]:
        flags = []
        if settings.no_owner:
            flags.append("--no-owner")
        if settings.no_privileges:
            flags.append("--no-privileges")
        return flags


# --- small helpers ---------------------------------------------------------------------------


async def _make_spool(settings: _Settings) -> Path:
    """A private temporary directory (``tmpdir`` option, else the system default)."""
    path = await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="backstream-pg-", dir=settings.tmpdir))
    return Path(path)


async def _first_chunk(data: AsyncIterator[bytes]) -> bytes | None:
    async for chunk in data:
        if chunk:
            return chunk
    return None


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


def _scratch_name(target: str, role: str = "restore") -> str:
    """A fresh database name derived from ``target``, within PostgreSQL's 63-byte limit."""
    suffix = f"__backstream_{role}_{secrets.token_hex(4)}"
    head = target.encode("utf-8")[: 63 - len(suffix)].decode("utf-8", "ignore")
    return head + suffix


async def _fetch_value(conn: PgSession, query: Any, params: tuple[Any, ...]) -> int:
    try:
        rows = await conn.execute(query, params)
    except import_psycopg().Error as exc:
        raise SourceError(f"PostgreSQL query failed: {_one_line(exc)}") from exc
    return int(rows[0][0]) if rows else 0


async def _create_database(admin: Any, dbname: str) -> None:
    sql = import_psycopg().sql
    try:
        await admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(dbname)))
    except import_psycopg().Error as exc:
        raise SourceError(f"cannot create database {dbname!r}: {_one_line(exc)}") from exc


async def _drop_quietly(admin: Any, dbname: str) -> None:
    """Drop a database this restore created (best effort, even while being cancelled)."""
    sql = import_psycopg().sql
    with anyio.CancelScope(shield=True), anyio.move_on_after(60):
        try:
            await admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        except import_psycopg().Error:
            pass


class PostgresFactory:
    """Opens ``postgresql://`` / ``postgres://`` URLs. Its restore path is the plain one, but it
    refuses ``--target-time`` with the way to do that (WAL replayed onto a physical backup)."""

    name = "postgresql"
    schemes = frozenset({"postgresql", "postgres"})

    def open(self, url: str, options: Mapping[str, str]) -> PostgresSource:
        return PostgresSource(url, options)

    def claims(self, request: RestoreRequest) -> bool:
        return False

    async def restore_backup(self, request: RestoreRequest, plugins: Plugins) -> RestoreOutcome:
        from backstream_plugins.postgresql.restore import restore_logical

        return await restore_logical(request, plugins)
