"""Verification checks for SQLite backups: catalog (tables, rows, columns, indexes, constraints,
content checksums by hashing ordered rows in Python) and ``PRAGMA integrity_check``.

Reads open the database read-only; a scratch target is a file in a new temporary directory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import anyio.to_thread
from backstream import CheckResult, ConfigError, SourceError

LEVELS = ("quick", "standard", "comprehensive")


def _path(url: str) -> str:
    prefix = "sqlite://"
    if not url.lower().startswith(prefix) or not url[len(prefix) :].strip("/"):
        raise ConfigError(f"not a sqlite URL: {url!r} (expected sqlite:///absolute/path.db)")
    path = unquote(url[len(prefix) :])
    if path.startswith("//"):  # sqlite:////abs/path (an absolute path after sqlite:///)
        path = "/" + path.lstrip("/")
    return os.path.abspath(path)


def _connect(url: str) -> sqlite3.Connection:
    from urllib.request import pathname2url  # here, not at the top: it costs every command ~4 ms (ssl, http)

    path = _path(url)
    if not os.path.isfile(path):
        raise SourceError(f"cannot open {path}: no such database file")
    try:
        return sqlite3.connect(f"file:{pathname2url(path)}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise SourceError(f"cannot open {path}: {exc}") from exc


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def row_checksum(rows: Any) -> str:
    """sha256 over the rows in the given order, each as its ``repr`` on one line."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(repr(tuple(row)).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def describe(url: str, level: str, max_rows: int | None) -> dict[str, Any]:
    """The catalog of the database at ``url`` (blocking; run in a worker thread)."""
    if level not in LEVELS:
        raise ConfigError(f"unknown verification level {level!r}")
    conn = _connect(url)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        tables: dict[str, Any] = {}
        for name in names:
            info: dict[str, Any] = {}
            tables[name] = info
            if level == "quick":
                continue
            quoted = _ident(name)
            info["rows"] = conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
            columns = conn.execute(f"PRAGMA table_info({quoted})").fetchall()
            info["columns"] = [
                [c[1], str(c[2]).lower(), "null" if not c[3] and not c[5] else "not null"] for c in columns
            ]
            if level != "comprehensive":
                continue
            info["indexes"] = {
                r[0]: r[1] or "auto"
                for r in conn.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? ORDER BY name", (name,)
                )
            }
            constraints: dict[str, str] = {}
            primary = [c[1] for c in sorted(columns, key=lambda c: c[5]) if c[5]]
            if primary:
                constraints["primary key"] = ", ".join(primary)
            for fk in conn.execute(f"PRAGMA foreign_key_list({quoted})").fetchall():
                key = f"foreign key {fk[0]}"
                constraints[key] = constraints.get(key, "") + f"{fk[3]}->{fk[2]}.{fk[4]} "
            info["constraints"] = {k: v.strip() for k, v in constraints.items()}
            if max_rows is not None and info["rows"] > max_rows:
                info["checksum"] = None
                info["checksum_skipped"] = f"{info['rows']} rows, above the checksum limit of {max_rows}"
            else:
                order = ", ".join(str(i + 1) for i in range(len(columns)))
                info["checksum"] = row_checksum(conn.execute(f"SELECT * FROM {quoted} ORDER BY {order}"))
        return {"engine": "sqlite", "tables": tables}
    except sqlite3.Error as exc:
        raise SourceError(f"cannot inspect {_path(url)}: {exc}") from exc
    finally:
        conn.close()


def _integrity(url: str) -> list[CheckResult]:
    conn = _connect(url)
    try:
        lines = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
        fks = conn.execute("PRAGMA foreign_key_check").fetchall()
    except sqlite3.Error as exc:
        return [CheckResult("integrity_check", "fail", str(exc))]
    finally:
        conn.close()
    results = [
        CheckResult("integrity_check", "pass", "ok")
        if lines == ["ok"]
        else CheckResult("integrity_check", "fail", "; ".join(lines[:5]))
    ]
    if fks:
        results.append(CheckResult("foreign_key_check", "fail", f"{len(fks)} rows violate foreign keys"))
    else:
        results.append(CheckResult("foreign_key_check", "pass", "no violations"))
    return results


class SqliteChecks:
    """Verification checks for backups of the ``sqlite`` source."""

    name = "sqlite"

    async def inspect(self, url: str, *, level: str, max_rows: int | None = None) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(describe, url, level, max_rows)

    async def integrity(self, url: str) -> list[CheckResult]:
        return await anyio.to_thread.run_sync(_integrity, url)

    @asynccontextmanager
    async def scratch(self, server_url: str) -> AsyncIterator[str]:
        """A database file in a new temporary directory (``server_url`` is not used)."""
        directory = await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="backstream-verify-"))
        try:
            yield f"sqlite://{Path(directory, 'scratch.db')}"
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(lambda: shutil.rmtree(directory, ignore_errors=True))
