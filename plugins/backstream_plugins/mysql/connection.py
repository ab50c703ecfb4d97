"""The one way the mysql plugin reaches a MySQL/MariaDB server: endpoints parsed from ``mysql://``
URLs, ``connect`` (honouring ``~/.my.cnf``, ``MYSQL_PWD`` and ``connect_timeout``), blocking work in
worker threads with driver errors as one-line ``SourceError``s, identifier quoting.

Backup, restore, checks, ``binlog-archive`` and binlog replay all connect through ``connect``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import anyio.to_thread
from backstream import ConfigError, SourceError, missing_dependency
from backstream.repository.urls import redact_url

from backstream_plugins.mysql.optionfile import my_cnf_password

T = TypeVar("T")

SCHEMES = frozenset({"mysql", "mariadb"})
DEFAULT_PORT = 3306
CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the server to answer a connection (URL parameter or option ``connect_timeout``)."""
URL_PARAMETERS = frozenset({"socket", "connect_timeout"})


@dataclass(frozen=True)
class MySQLEndpoint:
    """Where and as whom to connect; ``database`` may be empty for server-wide work (archiving)."""

    host: str
    port: int
    user: str | None
    password: str | None = field(repr=False)
    database: str
    socket: str | None = None
    connect_timeout: float = CONNECT_TIMEOUT

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


def parse_mysql_url(url: str, *, need_database: bool) -> MySQLEndpoint:
    """``mysql://user[:password]@host[:port][/db][?socket=/path]`` with percent-encoded parts."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"bad MySQL URL {redact_url(url)!r}: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigError(f"not a MySQL URL: {redact_url(url)!r} (expected mysql://user@host:port/db)")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - URL_PARAMETERS)
    if unknown:
        raise ConfigError(f"unknown MySQL URL parameter(s) {', '.join(unknown)} in {redact_url(url)!r}")
    database = unquote(parts.path.lstrip("/"))
    if "/" in database or (need_database and not database):
        raise ConfigError(f"the MySQL URL {redact_url(url)!r} must name one database: mysql://user@host:port/db")
    return MySQLEndpoint(
        host=unquote(parts.hostname or "localhost"),
        port=port or DEFAULT_PORT,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        database=database,
        socket=query["socket"][-1] if "socket" in query else None,
        connect_timeout=_seconds(query["connect_timeout"][-1], url) if "connect_timeout" in query else CONNECT_TIMEOUT,
    )


def _seconds(text: str, url: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise ConfigError(f"connect_timeout must be seconds between 0 and 3600 in {redact_url(url)!r}, not {text!r}")
    return value


def connect(endpoint: MySQLEndpoint, database: str | None = None, *, connect_timeout: float | None = None) -> Any:
    """A pymysql connection (autocommit, utf8mb4) to ``database`` (None: no default database).

    Without a password in the URL it is taken from ``MYSQL_PWD``, else from the ``[client]`` group of
    ``~/.my.cnf`` as the client tools read it (``optionfile.client_password``). ``connect_timeout``
    bounds the TCP connect and the server's greeting and login (pymysql bounds only the first).
    Failures are one-line SourceErrors. Blocking: call it in a worker thread (``call``).
    """
    pymysql = import_pymysql()
    password = endpoint.password
    if password is None:
        password = os.environ.get("MYSQL_PWD")
    if password is None:
        password = my_cnf_password() or ""
    timeout = connect_timeout if connect_timeout is not None else endpoint.connect_timeout
    try:
        conn = pymysql.connect(
            host=endpoint.host,
            port=endpoint.port,
            user=endpoint.user,
            password=password,
            database=database,
            unix_socket=endpoint.socket,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=timeout,
            read_timeout=timeout,  # the greeting and login: a port that never answers must not hang
        )
    except pymysql.err.MySQLError as exc:
        raise SourceError(f"cannot connect to MySQL at {endpoint.describe()}: {mysql_error_text(exc)}") from exc
    # Logged in: queries (CHECK TABLE, checksums of big tables) may take as long as they need. pymysql
    # has no public setter; it re-reads this attribute before each packet it reads.
    conn._read_timeout = None
    return conn


async def call(endpoint: MySQLEndpoint, function: Callable[..., T], *args: Any, doing: str = "") -> T:
    """Run blocking pymysql work in a worker thread, translating driver errors."""
    pymysql = import_pymysql()
    try:
        return await anyio.to_thread.run_sync(function, *args)
    except pymysql.err.MySQLError as exc:
        context = f" while {doing}" if doing else ""
        raise SourceError(f"MySQL at {endpoint.describe()} failed{context}: {mysql_error_text(exc)}") from exc


def query(endpoint: MySQLEndpoint, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on a fresh connection; return its rows (blocking)."""
    conn = connect(endpoint)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


def quote_mysql_ident(name: str) -> str:
    """A MySQL identifier in backticks (embedded backticks doubled)."""
    return "`" + name.replace("`", "``") + "`"


def import_pymysql() -> Any:
    try:
        return importlib.import_module("pymysql")  # optional: the "mysql" extra
    except ImportError as exc:
        raise missing_dependency("pymysql", "mysql") from exc


def mysql_error_text(exc: BaseException) -> str:
    """One line from a pymysql error: its message and code."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    if len(args) >= 2 and isinstance(args[0], int):
        return f"{' '.join(str(args[1]).split())} (error {args[0]})"
    return " ".join(str(exc).split()) or type(exc).__name__
