"""The ``postgresql-physical`` source: physical base backups streamed from ``pg_basebackup -D - -Ft``.

Selected with ``backstream backup postgresql://... --physical`` (no URL scheme of its own). The
tar stream goes through the pipeline as one object ``base.tar``; the manifest records the start and
stop LSN, the timeline and the WAL segments needed for consistency. Limits: one tablespace only
(pg_basebackup writes a single tar to stdout), and with ``wal=none`` (the default) the WAL comes
from the archive that ``backstream wal-push`` fills, so archiving must work.

Options: ``wal`` none|fetch (``-X``), ``checkpoint`` fast|spread (fast), ``bindir``,
``connect_timeout`` seconds (10), ``max_rate`` (``-r``, e.g. 100M).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from backstream import ByteSource, ConfigError, JobContext, Register, SourceError, hookimpl, missing_dependency, split

READ_SIZE = 256 * 1024
_START = re.compile(r"write-ahead log start point: ([0-9A-F]+/[0-9A-F]+) on timeline (\d+)")
_END = re.compile(r"write-ahead log end point: ([0-9A-F]+/[0-9A-F]+)")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise missing_dependency("psycopg", "postgresql") from exc
    return psycopg


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
        psycopg = _psycopg()
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

    def _where(self) -> str:
        host = self._params.get("host") or os.environ.get("PGHOST") or "localhost"
        port = self._params.get("port") or os.environ.get("PGPORT") or "5432"
        return f"{host}:{port}"

    async def _server_facts(self) -> dict[str, Any]:
        psycopg = _psycopg()
        params = dict(self._params, connect_timeout=self._timeout, application_name="backstream")
        if self._password is not None:
            params["password"] = self._password
        try:
            async with await psycopg.AsyncConnection.connect(autocommit=True, **params) as conn:
                cur = await conn.execute(
                    "SELECT current_setting('server_version'), current_setting('archive_mode'),"
                    " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),"
                    " (SELECT system_identifier::text FROM pg_control_system()),"
                    " (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))"
                )
                row = await cur.fetchone()
        except psycopg.Error as exc:
            raise SourceError(f"cannot connect to PostgreSQL on {self._where()}: {_one_line(exc)}") from exc
        assert row is not None
        return {
            "server_version": row[0],
            "archive_mode": row[1],
            "wal_segment_size": int(row[2]),
            "system_identifier": row[3],
            "extra_tablespaces": int(row[4]),
        }

    def _tool(self) -> str:
        if self._bindir:
            path = Path(self._bindir) / "pg_basebackup"
            if not path.is_file():
                raise SourceError(f"pg_basebackup not found in bindir {self._bindir}")
            return str(path)
        found = shutil.which("pg_basebackup")
        if found is None:
            raise SourceError("pg_basebackup not found on PATH; install the PostgreSQL client tools (postgresql-client)")
        return found

    def dump(self, job: JobContext) -> ByteSource:
        return self._dump(job)

    @asynccontextmanager
    async def _dump(self, job: JobContext) -> AsyncIterator[AsyncIterator[bytes]]:
        facts = await self._server_facts()
        if facts["extra_tablespaces"]:
            raise SourceError(
                "the cluster has tablespaces besides pg_default/pg_global; a streamed physical backup "
                "(pg_basebackup -D - -Ft) supports a single tablespace only"
            )
        if self._wal == "none" and facts["archive_mode"] == "off":
            raise SourceError(
                "archive_mode is off, so the WAL this base backup needs would not be archived; "
                "set it up with: backstream pitr setup URL --repo REPO (or use -o wal=fetch)"
            )
        psycopg = _psycopg()
        conninfo = str(psycopg.conninfo.make_conninfo("", **self._params))
        argv = [self._tool(), "-d", conninfo, "-D", "-", "-Ft", "-X", self._wal, "-v", "-c", self._checkpoint]
        argv += ["-l", f"backstream {job.job_id}"]
        if self._max_rate:
            argv += ["-r", self._max_rate]
        env = dict(os.environ)
        if self._password is not None:
            env["PGPASSWORD"] = self._password
        env.setdefault("PGCONNECT_TIMEOUT", self._timeout)
        with tempfile.TemporaryFile() as errors:
            try:
                process = await anyio.open_process(argv, stdin=None, stderr=errors, env=env)
            except OSError as exc:
                raise SourceError(f"cannot run pg_basebackup: {exc.strerror or exc}") from exc

            def failure(code: int | None) -> SourceError:
                errors.seek(0)
                lines = [ln.strip() for ln in errors.read()[-16384:].decode("utf-8", "replace").splitlines()]
                detail = " | ".join(ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower())[:800]
                if "single tablespace" in detail or "tablespace" in detail and "stdout" in detail:
                    detail += " (a streamed physical backup supports a single tablespace only)"
                return SourceError(f"pg_basebackup failed (exit status {code})" + (f": {detail}" if detail else ""))

            async def chunks() -> AsyncIterator[bytes]:
                assert process.stdout is not None
                while True:
                    try:
                        data = await process.stdout.receive(READ_SIZE)
                    except (anyio.EndOfStream, anyio.ClosedResourceError):
                        break
                    for piece in split(data):
                        yield piece
                code = await process.wait()
                if code != 0:
                    raise failure(code)
                errors.seek(0)
                self._record(job, facts, errors.read().decode("utf-8", "replace"))

            try:
                yield chunks()
            finally:
                with anyio.CancelScope(shield=True):
                    if process.returncode is None:
                        process.kill()
                    await process.aclose()

    def _record(self, job: JobContext, facts: dict[str, Any], log: str) -> None:
        start, end = _START.search(log), _END.search(log)
        if not start or not end:
            raise SourceError("pg_basebackup did not report its start and end WAL locations (is it version 10 or later?)")
        timeline, size = int(start.group(2)), facts["wal_segment_size"]
        start_lsn, stop_lsn = _lsn(start.group(1)), _lsn(end.group(1))
        job.metadata.update(
            {
                "server_version": facts["server_version"],
                "system_identifier": facts["system_identifier"],
                "format": "tar",
                "wal_method": self._wal,
                "start_lsn": start.group(1),
                "stop_lsn": end.group(1),
                "timeline": timeline,
                "wal_segment_size": size,
                "start_wal": _segment(start_lsn, timeline, size),
                "stop_wal": _segment(stop_lsn, timeline, size),
            }
        )

    async def restore(self, data: AsyncIterator[bytes], job: JobContext) -> None:
        raise ConfigError("physical backups restore into a data directory: backstream restore ID --to-dir DATADIR")


class PhysicalFactory:
    """No URL scheme of its own: chosen by ``backstream backup postgresql://... --physical``."""

    name = "postgresql-physical"
    schemes: frozenset[str] = frozenset()

    def open(self, url: str, options: Mapping[str, str]) -> PhysicalSource:
        return PhysicalSource(url, options)


@hookimpl
def backstream_register_sources(register: Register[Any]) -> None:
    register.add("postgresql-physical", PhysicalFactory(), requires=("psycopg",), extra="postgresql")
