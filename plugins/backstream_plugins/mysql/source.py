"""The ``mysql`` source (MySQL and MariaDB): ``mariadb-dump``/``mysqldump`` out, the ``mariadb``/``mysql`` client in.

Dumps are consistent snapshots that record the binlog coordinates; restores load a scratch database and swap it in.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

import anyio
import anyio.to_thread
from anyio.abc import ByteReceiveStream, Process
from backstream import (
    BackstreamError,
    ByteSource,
    ConfigError,
    JobContext,
    PipeChunks,
    RestoreOutcome,
    RestoreRequest,
    SourceError,
    kill_tool,
    make_pipe,
    open_tool,
    primary_error,
)

from backstream_plugins.mysql.connection import (
    MySQLEndpoint,
    call,
    connect,
    mysql_error_text,
    parse_mysql_url,
    quote_mysql_ident,
)
from backstream_plugins.mysql.optionfile import mysql_password_args

T = TypeVar("T")
log = logging.getLogger(__name__)

SCHEMES = frozenset({"mysql", "mariadb"})
DEFAULT_PORT = 3306

STDERR_LIMIT = 16 * 1024
"""Bytes of a tool's stderr kept (the last ones) for error messages."""

HEAD_LIMIT = 1024 * 1024
"""The binlog coordinates are looked for in the first MiB of a dump only."""

TAIL_LIMIT = 8 * 1024
"""MariaDB writes the GTID position at the end of a dump: the last bytes are kept to find it."""


LOCK_WAIT_TIMEOUT = 60
"""Seconds the swap waits for metadata locks held by others on the target (option ``lock_wait_timeout``)."""

MAX_PACKET = "1G"
"""max_allowed_packet for the tools (the server's own limit still applies on restore)."""

MAX_IDENTIFIER = 64
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})

DUMP_TOOLS = ("mariadb-dump", "mysqldump")
CLIENT_TOOLS = ("mariadb", "mysql")

_POSITION = re.compile(
    rb"^-- CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE='([^'\n]+)', "
    rb"(?:MASTER|SOURCE)_LOG_POS=(\d+);",
    re.MULTILINE,
)
_GTID = re.compile(rb"^-- SET GLOBAL gtid_slave_pos='([^'\n]*)';", re.MULTILINE)


# --- connection parameters ----------------------------------------------------------------------


def parse_url(url: str) -> MySQLEndpoint:
    """Split ``mysql://user[:password]@host[:port]/db[?socket=/path]`` (percent-encoded parts)."""
    endpoint = parse_mysql_url(url, need_database=True)
    if len(endpoint.database) > MAX_IDENTIFIER:
        raise ConfigError(f"database name longer than {MAX_IDENTIFIER} characters in {redact(url)!r}")
    return endpoint


def _qualified(database: str, name: str) -> str:
    return f"{quote_mysql_ident(database)}.{quote_mysql_ident(name)}"


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rsplit("@", 1)[1]
        user = quote(unquote(parts.username or ""), safe="")
        return parts._replace(netloc=f"{user}:***@{host}").geturl()
    except ValueError:
        return "<unparsable URL>"


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return value is not None and str(value).strip().lower() in TRUE_WORDS


# --- processes --------------------------------------------------------------------------------


class _Tail:
    """The last bytes a process wrote to stderr, bounded."""

    def __init__(self, limit: int = STDERR_LIMIT) -> None:
        self._data = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> None:
        self._data += data
        if len(self._data) > self._limit:
            del self._data[: len(self._data) - self._limit]

    def lines(self, count: int = 4) -> str:
        text = self._data.decode("utf-8", "replace")
        lines = [" ".join(line.split()) for line in text.splitlines()]
        lines = [line for line in lines if line and not line.startswith("---")]
        return "; ".join(lines[-count:])


async def _drain(stream: ByteReceiveStream | None, tail: _Tail) -> None:
    if stream is None:
        return
    async for data in stream:
        tail.feed(data)


def _status(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by signal {-code}"
    return f"exited with status {code}"


async def _reap(process: Process) -> None:
    """Kill ``process`` if it still runs and wait for it, even while being cancelled."""
    with anyio.CancelScope(shield=True):
        kill_tool(process)
        await process.aclose()


# --- the dump scanner ---------------------------------------------------------------------------


class _DumpScanner:
    """Finds the binlog coordinates near the head and the GTID near the end, without keeping the dump."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._head_done = False
        self._tail = bytearray()
        self.binlog_file: str | None = None
        self.binlog_position: int | None = None

    def feed(self, data: bytes) -> None:
        if not self._head_done:
            self._head += data[: HEAD_LIMIT - len(self._head)]
            match = _POSITION.search(self._head)
            if match:
                self.binlog_file = match.group(1).decode("utf-8", "replace")
                self.binlog_position = int(match.group(2))
            if match or len(self._head) >= HEAD_LIMIT:
                self._head_done = True
                self._head = bytearray()
        if len(data) >= TAIL_LIMIT:
            self._tail = bytearray(data[-TAIL_LIMIT:])
        else:
            self._tail += data
            del self._tail[:-TAIL_LIMIT]

    def gtid(self) -> str | None:
        match = _GTID.search(self._tail)
        return match.group(1).decode("utf-8", "replace") if match else None


# --- server information ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _ServerInfo:
    version: str
    flavor: str
    log_bin: bool
    server_id: int
    charset: str | None
    collation: str | None


# --- the source ------------------------------------------------------------------------------------


class MySQLSource:
    """One MySQL/MariaDB database: dumped with ``mariadb-dump``/``mysqldump``, restored with the client."""

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        self.endpoint = parse_url(url)
        self.options = dict(options)

    # --- helpers --------------------------------------------------------------------------

    def _option(self, job: JobContext, key: str) -> Any:
        return job.options.get(key, self.options.get(key))

    def _seconds(self, key: str, default: int) -> int:
        raw = self.options.get(key, default)
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"mysql {key} must be a whole number of seconds, not {raw!r}") from None
        if value < 1:
            raise ConfigError(f"mysql {key} must be at least 1, not {value}")
        return value

    def _tool(self, option: str, candidates: tuple[str, ...]) -> str:
        chosen = self.options.get(option)
        names = (str(chosen),) if chosen else candidates
        for name in names:
            found = shutil.which(name)
            if found:
                return found
        raise SourceError(
            f"{' or '.join(names)} not found on PATH; install the MariaDB or MySQL client tools "
            "(Debian: apt-get install mariadb-client)"
        )

    def _tool_args(self) -> list[str]:
        endpoint = self.endpoint
        args = [f"--host={endpoint.host}", f"--port={endpoint.port}"]
        if endpoint.user:
            args.append(f"--user={endpoint.user}")
        if endpoint.socket:
            args.append(f"--socket={endpoint.socket}")
        return args

    def _connect(self, database: str | None) -> Any:
        """A connection through the plugin's one ``connect`` (option ``connect_timeout`` wins over the URL's)."""
        timeout = self._seconds("connect_timeout", 10) if "connect_timeout" in self.options else None
        return connect(self.endpoint, database, connect_timeout=timeout)

    async def _call(self, function: Callable[..., T], *args: Any, doing: str = "") -> T:
        """Run blocking pymysql work in a worker thread, translating driver errors."""
        return await call(self.endpoint, function, *args, doing=doing)

    def _server_info(self) -> _ServerInfo:
        conn = self._connect(self.endpoint.database)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION(), @@version_comment, @@log_bin, @@server_id")
                version, comment, log_bin, server_id = cur.fetchone()
                cur.execute(
                    "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                    "WHERE SCHEMA_NAME = %s",
                    (self.endpoint.database,),
                )
                charset, collation = cur.fetchone() or (None, None)
        finally:
            conn.close()
        flavor = "mariadb" if "mariadb" in f"{version} {comment}".lower() else "mysql"
        return _ServerInfo(str(version), flavor, bool(int(log_bin)), int(server_id), charset, collation)

    # --- dump -----------------------------------------------------------------------------

    def dump(self, job: JobContext) -> ByteSource:
        """The database as an SQL dump; the context exits cleanly only if the tool succeeded."""
        return self._dump(job)

    @asynccontextmanager
    async def _dump(self, job: JobContext) -> AsyncIterator[AsyncIterator[bytes]]:
        endpoint = self.endpoint
        info = await self._call(self._server_info)
        tool = self._tool("dump_tool", DUMP_TOOLS)
        try:
            help_text = (await anyio.run_process([tool, "--help"], check=False)).stdout
        except OSError as exc:  # e.g. not executable, or a script whose interpreter is missing
            raise SourceError(f"cannot start {tool}: {exc.strerror or exc}") from exc
        tool_version = help_text.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        args = [
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--no-tablespaces",
            "--default-character-set=utf8mb4",
            f"--max-allowed-packet={MAX_PACKET}",
        ]
        coordinates = info.log_bin and _flag(self._option(job, "binlog") or "true")
        if coordinates:
            args.append("--source-data=2" if b"--source-data" in help_text else "--master-data=2")
        job.metadata.update(
            {
                "kind": "mysql",
                "flavor": info.flavor,
                "server_version": info.version,
                "server_id": info.server_id,
                "database": endpoint.database,
                "database_charset": info.charset,
                "database_collation": info.collation,
                "dump_tool": tool_version,
                "log_bin": info.log_bin,
            }
        )
        name = os.path.basename(tool)
        async with mysql_password_args(endpoint.password) as secret:
            argv = [tool, *secret, *self._tool_args(), *args, "--", endpoint.database]
            read_fd, write_fd = make_pipe()
            try:
                process = await open_tool(argv, stdin=subprocess.DEVNULL, stdout=write_fd)
            except OSError as exc:
                os.close(read_fd)
                raise SourceError(f"cannot start {name}: {exc.strerror or exc}") from exc
            except BaseException:
                os.close(read_fd)
                raise
            finally:
                os.close(write_fd)  # the tool holds the write end: EOF comes when it exits
            tail = _Tail()
            scanner = _DumpScanner()
            stream = PipeChunks(read_fd, observe=scanner.feed)  # read off the event loop by the pipeline
            try:
                try:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(_drain, process.stderr, tail)
                        yield stream
                        if not stream.at_end:
                            raise SourceError(f"the {name} output was not read to the end")
                        await process.wait()
                except BaseExceptionGroup as group:
                    raise primary_error(group) from None
                if process.returncode != 0:
                    detail = tail.lines()
                    raise SourceError(
                        f"{name} of {endpoint.describe()} {_status(process.returncode)}"
                        + (f": {detail}" if detail else "")
                    )
                if coordinates:
                    if scanner.binlog_file is None:
                        raise SourceError(f"the {name} output carried no binlog coordinates (CHANGE MASTER comment)")
                    job.metadata["binlog_file"] = scanner.binlog_file
                    job.metadata["binlog_position"] = scanner.binlog_position
                    gtid = scanner.gtid()
                    if gtid is not None:
                        job.metadata["gtid_position"] = gtid
            finally:
                await _reap(process)
                os.close(read_fd)

    # --- restore --------------------------------------------------------------------------

    async def restore(self, data: AsyncIterator[bytes], job: JobContext) -> None:
        """Load ``data`` into a scratch database; only when all of it applied, swap it into the target."""
        force = _flag(self._option(job, "force"))
        wanted = self._option(job, "collation") or job.metadata.get("database_collation")
        collation = await self._call(self._prepare_restore, force, wanted)
        scratch = _scratch_name(self.endpoint.database, "restore")
        await self._call(self._create_database, scratch, collation)
        try:
            await self._load(data, scratch)
            await self._call(self._swap, scratch, force, collation, doing="swapping the restored tables in")
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self._call(self._drop_database, scratch)
                except BackstreamError as exc:  # the original failure matters more
                    log.warning("could not drop the scratch database %s: %s", scratch, exc)

    def _prepare_restore(self, force: bool, wanted: str | None) -> str | None:
        """Check the target (not empty without force); return the collation for new databases."""
        conn = self._connect(None)
        try:
            with conn.cursor() as cur:
                existing = _database_collation(cur, self.endpoint.database)
                if existing is not None and not force:
                    _refuse_non_empty(cur, self.endpoint.database)
                if wanted:
                    cur.execute("SELECT 1 FROM information_schema.COLLATIONS WHERE COLLATION_NAME = %s", (wanted,))
                    if cur.fetchone() is None:
                        wanted = None
                return existing or wanted
        finally:
            conn.close()

    def _create_database(self, name: str, collation: str | None) -> None:
        conn = self._connect(None)
        try:
            with conn.cursor() as cur:
                _create(cur, name, collation)
        finally:
            conn.close()

    def _drop_database(self, name: str) -> None:
        conn = self._connect(None)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {quote_mysql_ident(name)}")
        finally:
            conn.close()

    async def _load(self, data: AsyncIterator[bytes], scratch: str) -> None:
        """Pipe ``data`` into the client loading ``scratch``; fails if the client reports any error."""
        tool = self._tool("client_tool", CLIENT_TOOLS)
        name = os.path.basename(tool)
        args = [
            f"--database={scratch}",
            "--batch",
            "--binary-mode",
            "--default-character-set=utf8mb4",
            f"--max-allowed-packet={MAX_PACKET}",
        ]
        async with mysql_password_args(self.endpoint.password) as secret:
            argv = [tool, *secret, *self._tool_args(), *args]
            try:
                process = await open_tool(argv, stdout=subprocess.DEVNULL)
            except OSError as exc:
                raise SourceError(f"cannot start {name}: {exc.strerror or exc}") from exc
            tail = _Tail()
            stopped_reading = False
            try:
                try:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(_drain, process.stderr, tail)
                        assert process.stdin is not None
                        async for chunk in data:
                            try:
                                await process.stdin.send(chunk)
                            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                                stopped_reading = True  # the client quit early; its status says why
                                break
                        await process.stdin.aclose()
                        await process.wait()
                except BaseExceptionGroup as group:
                    raise primary_error(group) from None
                if process.returncode != 0:
                    detail = tail.lines()
                    raise SourceError(
                        f"restore into {self.endpoint.describe()} failed: {name} {_status(process.returncode)}"
                        + (f": {detail}" if detail else "")
                    )
                if stopped_reading:
                    raise SourceError(f"restore into {self.endpoint.describe()} failed: {name} quit before the end")
            finally:
                await _reap(process)

    def _swap(self, scratch: str, force: bool, collation: str | None) -> None:
        """Move everything from ``scratch`` into the target: tables in one atomic RENAME TABLE, then
        views, triggers, routines and events re-created from their definitions."""
        target = self.endpoint.database
        conn = self._connect(None)
        trash: str | None = None
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SET SESSION lock_wait_timeout = %s", (self._seconds("lock_wait_timeout", LOCK_WAIT_TIMEOUT),)
                )
                existed = _database_collation(cur, target) is not None
                if existed and not force:
                    _refuse_non_empty(cur, target)
                new = _inventory(cur, conn, scratch)
                old = _inventory(cur, conn, target) if existed else _Inventory()
                if not existed:
                    _create(cur, target, collation)
                for trigger in new.triggers:  # a table with triggers cannot change database
                    cur.execute(f"DROP TRIGGER {quote_mysql_ident(scratch)}.{quote_mysql_ident(trigger.name)}")
                pairs = [(_qualified(scratch, t), _qualified(target, t)) for t in new.tables]
                if old.tables or old.views:
                    trash = _scratch_name(target, "old")
                    _create(cur, trash, None)
                    for trigger in old.triggers:
                        cur.execute(f"DROP TRIGGER {quote_mysql_ident(target)}.{quote_mysql_ident(trigger.name)}")
                    for view in old.views:
                        cur.execute(f"DROP VIEW {quote_mysql_ident(target)}.{quote_mysql_ident(view.name)}")
                    moved = [(_qualified(target, t), _qualified(trash, t)) for t in old.tables]
                    pairs = moved + pairs
                if pairs:
                    statement = "RENAME TABLE " + ", ".join(f"{a} TO {b}" for a, b in pairs)
                    try:
                        cur.execute(statement)
                    except Exception:
                        conn.select_db(target)
                        _recreate(cur, [*old.views, *old.triggers], strict=False)
                        raise
                conn.select_db(target)
                for routine in old.routines + old.events:
                    cur.execute(routine.drop)
                _recreate(cur, [*new.views, *new.triggers, *new.routines, *new.events], strict=True)
        finally:
            if trash is not None:  # the replaced tables
                try:
                    with conn.cursor() as cur:
                        cur.execute(f"DROP DATABASE IF EXISTS {quote_mysql_ident(trash)}")
                except Exception as exc:
                    log.warning("could not drop %s holding the replaced tables: %s", trash, mysql_error_text(exc))
            conn.close()


# --- restore helpers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Definition:
    """A view, trigger, routine or event: how to create it again and how to drop it."""

    kind: str
    name: str
    create: str
    drop: str
    sql_mode: str | None = None
    time_zone: str | None = None


@dataclass
class _Inventory:
    tables: list[str] = field(default_factory=list)
    views: list[_Definition] = field(default_factory=list)
    triggers: list[_Definition] = field(default_factory=list)
    routines: list[_Definition] = field(default_factory=list)
    events: list[_Definition] = field(default_factory=list)


def _scratch_name(database: str, purpose: str) -> str:
    suffix = f"__backstream_{purpose}_{secrets.token_hex(4)}"
    return database[: MAX_IDENTIFIER - len(suffix)] + suffix


def _create(cur: Any, name: str, collation: str | None) -> None:
    clause = f" COLLATE {collation}" if collation and re.fullmatch(r"\w+", collation) else ""
    cur.execute(f"CREATE DATABASE IF NOT EXISTS {quote_mysql_ident(name)}{clause}")


def _database_collation(cur: Any, name: str) -> str | None:
    """The database's default collation, or None when it does not exist."""
    cur.execute("SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
    row = cur.fetchone()
    return str(row[0]) if row else None


def _refuse_non_empty(cur: Any, name: str) -> None:
    counts = []
    for what, query in (
        ("tables or views", "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s"),
        ("routines", "SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s"),
        ("events", "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s"),
    ):
        cur.execute(query, (name,))
        count = int(cur.fetchone()[0])
        if count:
            counts.append(f"{count} {what}")
    if counts:
        raise SourceError(
            f"the target database {name!r} is not empty ({', '.join(counts)}); use --force to replace its content"
        )


def _inventory(cur: Any, conn: Any, database: str) -> _Inventory:
    """Everything in ``database`` with the statements to re-create it elsewhere (names unqualified)."""
    conn.select_db(database)
    found = _Inventory()
    db = quote_mysql_ident(database)

    def show(kind: str, name: str) -> tuple[Any, ...]:
        cur.execute(f"SHOW CREATE {kind} {quote_mysql_ident(name)}")
        row: tuple[Any, ...] = cur.fetchone()
        text_column = {"VIEW": 1, "EVENT": 3}.get(kind, 2)
        if row is None or row[text_column] is None:
            raise SourceError(f"no privilege to read the definition of {kind.lower()} {name!r} in {database!r}")
        return row

    def drop(kind: str, name: str) -> str:
        return f"DROP {kind} IF EXISTS {db}.{quote_mysql_ident(name)}"

    cur.execute(
        "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s ORDER BY TABLE_NAME",
        (database,),
    )
    views: list[str] = []
    for name, kind in cur.fetchall():
        (views if kind == "VIEW" else found.tables).append(name)
    for name in views:
        row = show("VIEW", name)
        found.views.append(_Definition("view", name, row[1], drop("VIEW", name)))
    cur.execute(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s "
        "ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
        (database,),
    )
    for (name,) in cur.fetchall():
        row = show("TRIGGER", name)
        found.triggers.append(_Definition("trigger", name, row[2], drop("TRIGGER", name), sql_mode=row[1]))
    cur.execute(
        "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s "
        "AND ROUTINE_TYPE IN ('PROCEDURE', 'FUNCTION') ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
        (database,),
    )
    for name, kind in cur.fetchall():
        row = show(kind, name)
        found.routines.append(_Definition(kind.lower(), name, row[2], drop(kind, name), sql_mode=row[1]))
    cur.execute(
        "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s ORDER BY EVENT_NAME", (database,)
    )
    for (name,) in cur.fetchall():
        row = show("EVENT", name)
        found.events.append(_Definition("event", name, row[3], drop("EVENT", name), sql_mode=row[1], time_zone=row[2]))
    conn.select_db("information_schema")
    return found


def _recreate(cur: Any, definitions: list[_Definition], *, strict: bool) -> None:
    """Create ``definitions`` in the current database, each under its own sql_mode; views are retried
    until those they depend on exist. With ``strict`` the first failure raises."""
    cur.execute("SELECT @@SESSION.sql_mode, @@SESSION.time_zone")
    sql_mode, time_zone = cur.fetchone()
    pending = list(definitions)
    while pending:
        failed: list[tuple[_Definition, BaseException]] = []
        for definition in pending:
            try:
                if definition.sql_mode is not None:
                    cur.execute("SET SESSION sql_mode = %s", (definition.sql_mode,))
                if definition.time_zone is not None:
                    cur.execute("SET SESSION time_zone = %s", (definition.time_zone,))
                cur.execute(definition.create)
            except Exception as exc:
                failed.append((definition, exc))
            finally:
                cur.execute("SET SESSION sql_mode = %s, time_zone = %s", (sql_mode, time_zone))
        if len(failed) == len(pending):
            if strict:
                first, error = failed[0]
                raise SourceError(
                    f"the tables were restored, but {first.kind} {first.name!r} could not be "
                    f"re-created: {mysql_error_text(error)}"
                ) from error
            return
        pending = [definition for definition, _ in failed]


# --- registration -----------------------------------------------------------------------------------


class MySQLFactory:
    """Opens ``mysql://`` and ``mariadb://`` URLs."""

    name = "mysql"
    schemes = SCHEMES

    def open(self, url: str, options: Mapping[str, str]) -> MySQLSource:
        return MySQLSource(url, options)

    def claims(self, request: RestoreRequest) -> bool:
        return False

    async def restore_backup(self, request: RestoreRequest, plugins: Any) -> RestoreOutcome:
        """``--target-time``: dump + binlog replay to that moment; otherwise the plain restore."""
        if request.target_time:
            from backstream_plugins.mysql.binlog.cli_restore import restore_at_time

            return await restore_at_time(request, plugins)
        from backstream.jobs import restore_plain

        return await restore_plain(request, plugins)
