"""MySQL/MariaDB connection endpoints parsed from ``mysql://`` URLs, identifier quoting, and the
one-line text of a pymysql error: shared by the mysql source plugin and binlog archiving/replay.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from backstream.errors import ConfigError, missing_dependency
from backstream.repository.urls import redact_url

SCHEMES = frozenset({"mysql", "mariadb"})
DEFAULT_PORT = 3306


@dataclass(frozen=True)
class MySQLEndpoint:
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
    unknown = sorted(set(query) - {"socket"})
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
    )


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
