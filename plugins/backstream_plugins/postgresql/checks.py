"""Verification checks for PostgreSQL backups: catalog (tables, rows, columns, indexes, constraints,
content checksums of each table's COPY data as pg_dump writes it) and ``amcheck``.

psycopg and pg_dump run in worker threads; a scratch target is a new database on the given server.
"""

from __future__ import annotations

import secrets
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import anyio.to_thread
from backstream import CheckResult, ConfigError, SourceError

from backstream_plugins.postgresql.copy_content import CopyContent, catalog_key
from backstream_plugins.postgresql.session import connect_blocking, import_psycopg

READ_SIZE = 256 * 1024
KEY_FORMAT = 2
"""Catalogs recorded since table keys quote names that hold a dot (``catalog_key``); an older
catalog (no ``key_format``) is compared through ``legacy_keys``, the keys as they were then."""

LEVELS = ("quick", "standard", "comprehensive")
USER_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""
COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
INDEXES = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s"
CONSTRAINTS = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass
"""
BTREE_INDEXES = """
SELECT c.oid, n.nspname || '.' || c.relname FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = c.relam
WHERE am.amname = 'btree' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND i.indisvalid ORDER BY 2
"""


def _connect(url: str) -> Any:
    return connect_blocking(url, describe="for verification")


def _qualified(schema: str, table: str) -> str:
    return '"' + schema.replace('"', '""') + '"."' + table.replace('"', '""') + '"'


def describe(url: str, level: str, max_rows: int | None, content: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The catalog of the database at ``url`` (blocking; run in a worker thread).

    Rows and content checksums come from ``content`` when given (read off the backup's own dump);
    otherwise, at the comprehensive level, from a ``pg_dump --data-only`` of the database (the
    same COPY text, so the same checksums); tables without COPY data (partitioned parents) fall
    back to ``count(*)`` and an md5 over the sorted row hashes.
    """
    if level not in LEVELS:
        raise ConfigError(f"unknown verification level {level!r}")
    psycopg = import_psycopg()
    if content is None and level == "comprehensive":
        content = dumped_content(url)
    figures = content or {}
    with _connect(url) as conn:
        try:
            tables: dict[str, Any] = {}
            legacy: dict[str, str] = {}  # key -> how backstream keyed it before KEY_FORMAT 2
            for schema, table in conn.execute(USER_TABLES).fetchall():
                info: dict[str, Any] = {}
                key = catalog_key(schema, table)
                tables[key] = info
                if key != f"{schema}.{table}":
                    legacy[key] = f"{schema}.{table}"
                if level == "quick":
                    continue
                name = _qualified(schema, table)
                known = figures.get(key, {})
                if "rows" in known:
                    info["rows"] = known["rows"]
                else:
                    info["rows"] = conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                info["columns"] = [
                    [c[0], c[1], "not null" if c[2] else "null"] for c in conn.execute(COLUMNS, (name,)).fetchall()
                ]
                if level != "comprehensive":
                    continue
                info["indexes"] = dict(conn.execute(INDEXES, (schema, table)).fetchall())
                info["constraints"] = dict(conn.execute(CONSTRAINTS, (name,)).fetchall())
                if known.get("checksum"):
                    info["checksum"] = known["checksum"]
                elif max_rows is not None and info["rows"] > max_rows:
                    info["checksum"] = None
                    info["checksum_skipped"] = f"{info['rows']} rows, above the checksum limit of {max_rows}"
                else:
                    info["checksum"] = conn.execute(
                        f"SELECT md5(coalesce(string_agg(h, '' ORDER BY h), '')) "
                        f"FROM (SELECT md5(t::text) AS h FROM {name} t) rows"
                    ).fetchone()[0]
            result: dict[str, Any] = {"engine": "postgresql", "key_format": KEY_FORMAT, "tables": tables}
            if legacy:
                result["legacy_keys"] = legacy
            return result
        except psycopg.Error as exc:
            raise SourceError(f"cannot inspect the database: {' '.join(str(exc).split())}") from exc


def dumped_content(url: str) -> dict[str, dict[str, Any]]:
    """Per-table rows and COPY checksums of ``pg_dump --data-only`` of ``url`` (blocking)."""
    from backstream_plugins.postgresql.logical import data_dump_command

    argv, env = data_dump_command(url)
    content = CopyContent()
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, env=env)
        except OSError as exc:
            raise SourceError(f"cannot run pg_dump for verification: {exc.strerror or exc}") from exc
        with process:
            assert process.stdout is not None
            while data := process.stdout.read(READ_SIZE):
                content.feed(data)
        if process.returncode != 0:
            errors.seek(0)
            detail = " ".join(errors.read()[-2000:].decode("utf-8", "replace").split())
            raise SourceError(f"pg_dump of the database to verify failed (exit status {process.returncode}): {detail}")
    return content.tables


def _amcheck(url: str) -> list[CheckResult]:
    psycopg = import_psycopg()
    with _connect(url) as conn:
        try:
            existed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'").fetchone() is not None
            if not existed:
                conn.execute("CREATE EXTENSION amcheck")
        except psycopg.Error as exc:
            return [CheckResult("amcheck", "skip", f"amcheck is not available: {' '.join(str(exc).split())}")]
        try:
            failures: list[str] = []
            indexes = conn.execute(BTREE_INDEXES).fetchall()
            for oid, name in indexes:
                try:
                    conn.execute("SELECT bt_index_check(%s::oid)", (oid,))
                except psycopg.Error as exc:
                    failures.append(f"{name}: {' '.join(str(exc).split())}")
        finally:
            if not existed:
                conn.execute("DROP EXTENSION IF EXISTS amcheck")
    if failures:
        return [CheckResult("amcheck", "fail", "; ".join(failures[:5]))]
    return [CheckResult("amcheck", "pass", f"{len(indexes)} btree indexes checked with bt_index_check")]


def scratch_url(server_url: str, dbname: str) -> str:
    """``server_url`` with its database replaced by ``dbname``."""
    parts = urlsplit(server_url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"not a postgresql URL for the scratch database: {parts.scheme}://...")
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(dbname), parts.query, ""))


def _drop(server_url: str, dbname: str) -> None:
    with _connect(scratch_url(server_url, "postgres")) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


class PostgresChecks:
    """Verification checks for backups of the ``postgresql`` source."""

    name = "postgresql"

    async def inspect(
        self, url: str, *, level: str, max_rows: int | None = None, content: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(describe, url, level, max_rows, content)

    async def integrity(self, url: str) -> list[CheckResult]:
        return await anyio.to_thread.run_sync(_amcheck, url)

    @asynccontextmanager
    async def scratch(self, server_url: str) -> AsyncIterator[str]:
        """A new database ``backstream_verify_<random>`` on the server (the restore creates it); dropped on exit."""
        dbname = f"backstream_verify_{secrets.token_hex(4)}"
        url = scratch_url(server_url, dbname)
        try:
            yield url
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_drop, server_url, dbname)
