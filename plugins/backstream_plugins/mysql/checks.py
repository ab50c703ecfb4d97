"""Verification checks for MySQL/MariaDB backups: catalog (tables, rows, columns, indexes,
constraints, content checksums from the server's per-row MD5s in order) and ``CHECK TABLE``.

pymysql runs in worker threads; a scratch target is a new schema on the given server.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import anyio.to_thread
from backstream import CheckResult, ConfigError, SourceError

from backstream_plugins.mysql.connection import connect, import_pymysql, parse_mysql_url, quote_mysql_ident

LEVELS = ("quick", "standard", "comprehensive")
SCHEMES = ("mysql", "mariadb")


def _connect(url: str, *, database: bool = True) -> tuple[Any, str]:
    """A connection through the plugin's one ``connect``, and the URL's database name."""
    if urlsplit(url).scheme.lower() not in SCHEMES:
        raise ConfigError(f"not a MySQL URL for verification: {urlsplit(url).scheme}://...")
    endpoint = parse_mysql_url(url, need_database=database)
    return connect(endpoint), endpoint.database


def describe(url: str, level: str, max_rows: int | None) -> dict[str, Any]:
    """The catalog of the database at ``url`` (blocking; run in a worker thread)."""
    if level not in LEVELS:
        raise ConfigError(f"unknown verification level {level!r}")
    pymysql = import_pymysql()
    conn, db = _connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (db,))
            if cur.fetchone() is None:
                raise SourceError(f"the database {db!r} does not exist")
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                "AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                (db,),
            )
            names = [str(r[0]) for r in cur.fetchall()]
            tables: dict[str, Any] = {}
            for table in names:
                info: dict[str, Any] = {}
                tables[table] = info
                if level == "quick":
                    continue
                qualified = f"{quote_mysql_ident(db)}.{quote_mysql_ident(table)}"
                cur.execute(f"SELECT COUNT(*) FROM {qualified}")
                info["rows"] = int(cur.fetchone()[0])
                cur.execute(
                    "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                    (db, table),
                )
                info["columns"] = [
                    [str(c[0]), str(c[1]), "null" if c[2] == "YES" else "not null"] for c in cur.fetchall()
                ]
                columns = [c[0] for c in info["columns"]]
                if level != "comprehensive":
                    continue
                cur.execute(
                    "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS "
                    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY INDEX_NAME, SEQ_IN_INDEX",
                    (db, table),
                )
                indexes: dict[str, list[str]] = {}
                unique: dict[str, bool] = {}
                for index, non_unique, column in cur.fetchall():
                    indexes.setdefault(str(index), []).append(str(column))
                    unique[str(index)] = not int(non_unique)
                info["indexes"] = {
                    k: ("UNIQUE " if unique[k] else "") + "(" + ", ".join(v) + ")" for k, v in indexes.items()
                }
                cur.execute(
                    "SELECT CONSTRAINT_NAME, CONSTRAINT_TYPE FROM information_schema.TABLE_CONSTRAINTS "
                    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                    (db, table),
                )
                info["constraints"] = {str(r[0]): str(r[1]) for r in cur.fetchall()}
                if max_rows is not None and info["rows"] > max_rows:
                    info["checksum"] = None
                    info["checksum_skipped"] = f"{info['rows']} rows, above the checksum limit of {max_rows}"
                else:
                    row = "CONCAT_WS(',', " + ", ".join(f"QUOTE({quote_mysql_ident(c)})" for c in columns) + ")"
                    cur.execute(f"SELECT MD5({row}) AS h FROM {qualified} ORDER BY h")
                    digest = hashlib.sha256()
                    for (value,) in cur.fetchall():
                        digest.update(str(value).encode() + b"\n")
                    info["checksum"] = digest.hexdigest()
        return {"engine": "mysql", "tables": tables}
    except pymysql.err.MySQLError as exc:
        raise SourceError(f"cannot inspect the database: {exc.args[-1] if exc.args else exc}") from exc
    finally:
        conn.close()


def _check_tables(url: str) -> list[CheckResult]:
    conn, db = _connect(url)
    failures: list[str] = []
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
                (db,),
            )
            names = [str(r[0]) for r in cur.fetchall()]
            for table in names:
                cur.execute(f"CHECK TABLE {quote_mysql_ident(db)}.{quote_mysql_ident(table)}")
                rows = cur.fetchall()
                status = [str(r[3]) for r in rows if str(r[2]).lower() == "status"]
                errors = [str(r[3]) for r in rows if str(r[2]).lower() == "error"]
                if errors or (status and status[-1].upper() != "OK"):
                    failures.append(f"{table}: {'; '.join(errors or status)}")
    finally:
        conn.close()
    if failures:
        return [CheckResult("check table", "fail", "; ".join(failures[:5]))]
    return [CheckResult("check table", "pass", f"{len(names)} tables OK")]


def scratch_url(server_url: str, dbname: str) -> str:
    """``server_url`` with its database replaced by ``dbname``."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(dbname), parts.query, ""))


def _drop(server_url: str, dbname: str) -> None:
    conn, _ = _connect(server_url, database=False)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quote_mysql_ident(dbname)}")
    finally:
        conn.close()


class MysqlChecks:
    """Verification checks for backups of the ``mysql`` source (MySQL and MariaDB)."""

    name = "mysql"

    async def inspect(self, url: str, *, level: str, max_rows: int | None = None) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(describe, url, level, max_rows)

    async def integrity(self, url: str) -> list[CheckResult]:
        return await anyio.to_thread.run_sync(_check_tables, url)

    @asynccontextmanager
    async def scratch(self, server_url: str) -> AsyncIterator[str]:
        """A new schema ``backstream_verify_<random>`` on the server (the restore creates it); dropped on exit."""
        dbname = f"backstream_verify_{secrets.token_hex(4)}"
        try:
            yield scratch_url(server_url, dbname)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_drop, server_url, dbname)
