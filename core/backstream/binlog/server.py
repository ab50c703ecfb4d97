"""The MySQL/MariaDB side of binlog archiving and replay: URL parsing, pymysql control, client tools.

Passwords reach the command-line tools only through a 0600 option file that is removed afterwards.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import anyio
import anyio.to_thread

from backstream.errors import ConfigError, SourceError, missing_dependency
from backstream.repository import redact_url

T = TypeVar("T")

SCHEMES = frozenset({"mysql", "mariadb"})
DEFAULT_PORT = 3306
CONNECT_TIMEOUT = 10
BINLOG_TOOLS = ("mariadb-binlog", "mysqlbinlog")
CLIENT_TOOLS = ("mariadb", "mysql")


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect; ``database`` may be empty for server-wide work (archiving)."""

    host: str
    port: int
    user: str | None
    password: str | None = field(repr=False)
    database: str
    socket: str | None = None

    def describe(self) -> str:
        user = f"{self.user}@" if self.user else ""
        where = self.socket if self.socket else f"{self.host}:{self.port}"
        return f"{user}{where}/{self.database}"

    def tool_args(self) -> list[str]:
        args = [f"--host={self.host}", f"--port={self.port}"]
        if self.user:
            args.append(f"--user={self.user}")
        if self.socket:
            args.append(f"--socket={self.socket}")
        return args


def parse_endpoint(url: str, *, need_database: bool) -> Endpoint:
    """``mysql://user[:password]@host[:port][/db][?socket=/path]`` with percent-encoded parts."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad MySQL URL {redact_url(url)!r}: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigError(f"not a MySQL URL: {redact_url(url)!r} (expected mysql://user@host:port/db)")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"socket"})
    if unknown:
        raise ConfigError(f"unknown MySQL URL parameter(s) {', '.join(unknown)} in {redact_url(url)!r}")
    database = unquote(parts.path.lstrip("/"))
    if "/" in database or (need_database and not database):
        raise ConfigError(f"the MySQL URL {redact_url(url)!r} must name one database: mysql://user@host:port/db")
    return Endpoint(
        host=unquote(parts.hostname or "localhost"),
        port=port or DEFAULT_PORT,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        database=database,
        socket=query["socket"][-1] if "socket" in query else None,
    )


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def pymysql_module() -> Any:
    try:
        return importlib.import_module("pymysql")  # optional: the "mysql" extra
    except ImportError as exc:
        raise missing_dependency("pymysql", "mysql") from exc


def reason(exc: BaseException) -> str:
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        return f"{' '.join(str(args[1]).split())} (error {args[0]})"
    return " ".join(str(exc).split()) or type(exc).__name__


def connect(endpoint: Endpoint, database: str | None = None) -> Any:
    """A pymysql connection (autocommit, utf8mb4); failures are one-line SourceErrors."""
    pymysql = pymysql_module()
    password = endpoint.password
    if password is None:
        password = os.environ.get("MYSQL_PWD", "")
    try:
        return pymysql.connect(
            host=endpoint.host,
            port=endpoint.port,
            user=endpoint.user,
            password=password,
            database=database,
            unix_socket=endpoint.socket,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
        )
    except pymysql.err.MySQLError as exc:
        raise SourceError(f"cannot connect to MySQL at {endpoint.describe()}: {reason(exc)}") from exc


async def call(endpoint: Endpoint, function: Callable[..., T], *args: Any, doing: str = "") -> T:
    """Run blocking pymysql work in a worker thread, translating driver errors."""
    pymysql = pymysql_module()
    try:
        return await anyio.to_thread.run_sync(function, *args)
    except pymysql.err.MySQLError as exc:
        context = f" while {doing}" if doing else ""
        raise SourceError(f"MySQL at {endpoint.describe()} failed{context}: {reason(exc)}") from exc


def query(endpoint: Endpoint, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on a fresh connection; return its rows (blocking)."""
    conn = connect(endpoint)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


def find_tool(candidates: tuple[str, ...]) -> str:
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    raise SourceError(
        f"{' or '.join(candidates)} not found on PATH; install the MariaDB or MySQL client tools "
        "(Debian: apt-get install mariadb-client)"
    )


def tail_lines(data: bytes, count: int = 4) -> str:
    text = data[-16384:].decode("utf-8", "replace")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("---")]
    errors = [line for line in lines if line.startswith("ERROR")]
    return "; ".join((errors or lines)[-count:])
