"""The MySQL/MariaDB side of binlog archiving and replay: URL parsing, pymysql control, client tools.

Passwords reach the command-line tools only through a 0600 option file that is removed afterwards.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from backstream.errors import SourceError
from backstream.mysqlurl import MySQLEndpoint, import_pymysql, mysql_error_text

T = TypeVar("T")

CONNECT_TIMEOUT = 10
BINLOG_TOOLS = ("mariadb-binlog", "mysqlbinlog")
CLIENT_TOOLS = ("mariadb", "mysql")


def connect(endpoint: MySQLEndpoint, database: str | None = None) -> Any:
    """A pymysql connection (autocommit, utf8mb4); failures are one-line SourceErrors."""
    pymysql = import_pymysql()
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
        raise SourceError(f"cannot connect to MySQL at {endpoint.describe()}: {mysql_error_text(exc)}") from exc


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
