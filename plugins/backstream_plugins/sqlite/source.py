"""The ``sqlite`` source: a consistent copy through SQLite's online backup API, streamed as the database file.

URL ``sqlite:///abs/path.db``; restore checks a scratch file beside the target, then renames it over the target.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote

import anyio
import anyio.from_thread
import anyio.to_thread
from backstream import (
    CHUNK_SIZE,
    ConfigError,
    JobContext,
    RestoreOutcome,
    RestoreRequest,
    SourceError,
    VerificationError,
    os_reason,
)

STEP_PAGES = 4096
"""Pages copied per backup step; between steps the copy checks for cancellation."""

MAX_RESTARTS = 3
"""A copy restarted this often fails (it cannot happen while we hold the read transaction)."""

BUSY_TIMEOUT = 30.0
"""Seconds to wait for a lock held by another connection before failing (option ``busy_timeout``)."""

IO_SIZE = 16 * CHUNK_SIZE
"""Bytes per blocking read or write (1 MiB)."""

SIDE_FILES = ("-wal", "-shm", "-journal")
"""Files SQLite keeps beside a database; stale ones must not survive a replaced database."""

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


class _TooManyRestarts(Exception):
    pass


class _Busy(Exception):
    pass


def path_from_url(url: str) -> str:
    """The absolute file path in ``sqlite:///abs/path.db`` (``sqlite://rel.db`` is relative to cwd)."""
    prefix = "sqlite://"
    if not url.lower().startswith(prefix):
        raise ConfigError(f"not a sqlite URL: {url!r} (expected sqlite:///absolute/path.db)")
    rest = url[len(prefix) :]
    if "?" in rest or "#" in rest:
        raise ConfigError(f"sqlite URLs take no query or fragment: {url!r}")
    path = unquote(rest)
    if not path or path == "/":
        raise ConfigError(f"sqlite URL names no file: {url!r} (expected sqlite:///absolute/path.db)")
    if path.startswith("//"):  # sqlite:////abs/path (an absolute path after sqlite:///)
        path = "/" + path.lstrip("/")
    return os.path.abspath(path)


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() in TRUE_WORDS


def _positive_float(options: Mapping[str, str], key: str, default: float) -> float:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"sqlite option {key} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"sqlite option {key} must be positive, not {raw!r}")
    return value


# --- dump (runs in a worker thread) --------------------------------------------------------------


def _describe(exc: sqlite3.Error) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _translate(exc: sqlite3.Error, path: str) -> SourceError:
    text = _describe(exc)
    lowered = text.lower()
    if "not a database" in lowered or "file is encrypted" in lowered:
        return SourceError(f"{path} is not a SQLite database")
    if "locked" in lowered or "busy" in lowered:
        return SourceError(f"sqlite database {path} is locked by another connection: {text}")
    if "unable to open" in lowered:
        return SourceError(f"cannot open sqlite database {path}: {text}")
    return SourceError(f"sqlite database {path}: {text}")


def _check_readable(path: str) -> None:
    try:
        if stat.S_ISDIR(os.stat(path).st_mode):
            raise SourceError(f"{path} is a directory, not a SQLite database")
        with open(path, "rb"):
            pass
    except FileNotFoundError as exc:
        raise SourceError(f"sqlite database {path} does not exist") from exc
    except OSError as exc:  # denied is not missing: a folder on the way we may not search, say
        raise SourceError(f"cannot read sqlite database {path}: {os_reason(exc)}") from exc


def _copy(source: sqlite3.Connection, target: sqlite3.Connection, busy_timeout: float) -> None:
    """Copy with the online backup API in steps, inside the read transaction the caller holds."""
    source.backup(target, pages=STEP_PAGES, progress=_Progress(busy_timeout), sleep=0.05)


class _Progress:
    """The backup API's step callback: honours cancellation, bounds waits for locks and restarts."""

    def __init__(self, busy_timeout: float) -> None:
        self._busy_timeout = busy_timeout
        self._last: int | None = None
        self._restarts = 0
        self._busy_since: float | None = None

    def __call__(self, status: int, remaining: int, total: int) -> None:
        anyio.from_thread.check_cancelled()  # a cancelled job stops the copy at the next step
        if status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            now = time.monotonic()
            if self._busy_since is None:
                self._busy_since = now
            elif now - self._busy_since > self._busy_timeout:
                raise _Busy
            return
        self._busy_since = None
        if self._last is not None and remaining > self._last:  # the source changed under us: restarted
            self._restarts += 1
            if self._restarts > MAX_RESTARTS:
                raise _TooManyRestarts
        self._last = remaining


def _snapshot(path: str, snapshot: str, busy_timeout: float) -> dict[str, Any]:
    """Write a consistent copy of ``path`` to ``snapshot``; return what the manifest records."""
    _check_readable(path)
    try:
        source = sqlite3.connect(Path(path).as_uri() + "?mode=ro", uri=True, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise _translate(exc, path) from exc
    try:
        try:
            # A read transaction for the whole copy: one consistent snapshot that writers cannot
            # restart (WAL: they go on writing; rollback journal: they wait until the copy is done).
            source.execute("BEGIN")
            source.execute("SELECT count(*) FROM sqlite_master").fetchone()  # takes the lock; fails for a non-database
            target = sqlite3.connect(snapshot)
            try:
                _copy(source, target, busy_timeout)
                source.execute("ROLLBACK")  # release the read lock before the checks below
                page_size = int(target.execute("PRAGMA page_size").fetchone()[0])
                page_count = int(target.execute("PRAGMA page_count").fetchone()[0])
                journal_mode = str(target.execute("PRAGMA journal_mode").fetchone()[0])
                problems = [row[0] for row in target.execute("PRAGMA quick_check").fetchall()]
            finally:
                target.close()
        except _TooManyRestarts:
            raise SourceError(f"the copy of sqlite database {path} kept restarting; try again") from None
        except _Busy:
            raise SourceError(
                f"sqlite database {path} stayed locked by another connection for more than {busy_timeout:g}s"
            ) from None
        except sqlite3.Error as exc:
            raise _translate(exc, path) from exc
    finally:
        source.close()
    if problems != ["ok"]:
        raise SourceError(f"sqlite database {path} is corrupt: {'; '.join(problems[:3])}")
    return {
        "database": path,
        "server_version": sqlite3.sqlite_version,
        "sqlite_version": sqlite3.sqlite_version,
        "page_size": page_size,
        "page_count": page_count,
        "size": os.path.getsize(snapshot),
        "journal_mode": journal_mode,
    }


def _open_and_unlink(path: str) -> BinaryIO:
    """Open the snapshot and remove its name at once: its space is freed even if we are killed."""
    handle = open(path, "rb")
    os.unlink(path)
    return handle


# --- restore (blocking parts run in worker threads) ----------------------------------------------


def _prepare_target(target: str, force: bool) -> None:
    try:
        info: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        info = None
    except OSError as exc:  # a folder on the way we may not search: say so, not "cannot create"
        raise SourceError(f"cannot restore to {target}: {os_reason(exc)}") from exc
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise SourceError(f"cannot restore to {target}: it is a directory")
    if info is not None and info.st_size > 0 and not force:
        raise SourceError(f"cannot restore to {target}: the file exists and is not empty (use --force to replace it)")
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
    except OSError as exc:
        raise SourceError(f"cannot create the directory for {target}: {os_reason(exc)}") from exc


def _check_file(path: str) -> None:
    """``PRAGMA quick_check`` on a restored file before it replaces anything."""
    try:
        connection = sqlite3.connect(path)
        try:
            problems = [row[0] for row in connection.execute("PRAGMA quick_check").fetchall()]
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise VerificationError(f"the restored data is not a usable SQLite database: {_describe(exc)}") from exc
    if problems != ["ok"]:
        raise VerificationError(f"the restored SQLite database fails its integrity check: {'; '.join(problems[:3])}")


def _install(scratch: str, target: str, force: bool) -> None:
    """Rename the checked scratch file over the target (atomic), dropping the target's stale side files."""
    _check_file(scratch)
    _prepare_target(target, force)  # again: the target may have appeared meanwhile
    for suffix in SIDE_FILES:
        try:
            os.unlink(target + suffix)
        except FileNotFoundError:
            pass
    os.replace(scratch, target)
    directory = os.open(os.path.dirname(target), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _write_all(handle: BinaryIO, data: bytes) -> None:
    handle.write(data)


def _finish_file(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _discard(handle: BinaryIO | None, scratch: str) -> None:
    if handle is not None:
        try:
            handle.close()
        except OSError:
            pass
    for path in (scratch, *(scratch + suffix for suffix in SIDE_FILES)):
        try:
            os.unlink(path)
        except OSError:  # never there, or not ours to remove: the error that brought us here is the one to report
            pass


# --- the plugin ----------------------------------------------------------------------------------


class SqliteSource:
    """One SQLite database file, to dump from or restore to."""

    filename = "database.sqlite"
    """Name of the stored object (before the compressor's extension)."""

    def __init__(self, path: str, options: Mapping[str, str]) -> None:
        self.path = path
        self._options = dict(options)

    def _option(self, job: JobContext, key: str) -> str | None:
        return job.options.get(key, self._options.get(key))

    async def estimated_size(self) -> int | None:
        """The database file's size (``SizedSource``): the snapshot streamed is a copy of it,
        give or take what writers change meanwhile and pages still in the ``-wal`` file."""
        try:
            return (await anyio.to_thread.run_sync(os.stat, self.path)).st_size
        except OSError:  # the dump says what is wrong with the file; a guess has nothing to add
            return None

    @asynccontextmanager
    async def dump(self, job: JobContext) -> AsyncIterator[AsyncIterator[bytes]]:
        """Copy the database consistently to a scratch file, then stream that file."""
        fmt = self._option(job, "format")
        if fmt not in (None, "", "plain"):
            raise ConfigError(f"sqlite backups have one format (the database file), not {fmt!r}")
        busy_timeout = _positive_float({**self._options, **job.options}, "busy_timeout", BUSY_TIMEOUT)
        directory = await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="backstream-sqlite-"))
        handle: BinaryIO | None = None
        try:
            snapshot = os.path.join(directory, "snapshot.sqlite")
            job.metadata.update(await anyio.to_thread.run_sync(_snapshot, self.path, snapshot, busy_timeout))
            handle = await anyio.to_thread.run_sync(_open_and_unlink, snapshot)
            yield _read_chunks(handle)
        finally:
            with anyio.CancelScope(shield=True):
                if handle is not None:
                    await anyio.to_thread.run_sync(handle.close)
                await anyio.to_thread.run_sync(lambda: shutil.rmtree(directory, ignore_errors=True))

    async def restore(self, data: AsyncIterator[bytes], job: JobContext) -> None:
        """Stream ``data`` into a scratch file beside the target; check it; rename it over the target.

        If ``data`` raises (e.g. IntegrityError at its end), the scratch file is removed and the target
        is left exactly as it was.
        """
        target = self.path
        force = _flag(self._option(job, "force"))
        await anyio.to_thread.run_sync(_prepare_target, target, force)
        scratch = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.{uuid.uuid4().hex[:12]}.restore")
        handle: BinaryIO | None = None
        installed = False
        try:
            try:
                handle = await anyio.to_thread.run_sync(open, scratch, "xb")
            except OSError as exc:
                raise SourceError(f"cannot restore to {target}: {os_reason(exc)}") from exc
            pending: list[bytes] = []
            size = 0
            try:
                async for chunk in data:
                    pending.append(chunk)
                    size += len(chunk)
                    if size >= IO_SIZE:
                        await anyio.to_thread.run_sync(_write_all, handle, b"".join(pending))
                        pending.clear()
                        size = 0
                if pending:
                    await anyio.to_thread.run_sync(_write_all, handle, b"".join(pending))
                await anyio.to_thread.run_sync(_finish_file, handle)
                handle = None
                await anyio.to_thread.run_sync(_install, scratch, target, force)
            except OSError as exc:
                raise SourceError(f"cannot restore to {target}: {os_reason(exc)}") from exc
            installed = True
        finally:
            if not installed:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(_discard, handle, scratch)


async def _read_chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    while True:
        data = await anyio.to_thread.run_sync(handle.read, IO_SIZE)
        if not data:
            return
        view = memoryview(data)
        for start in range(0, len(data), CHUNK_SIZE):
            yield bytes(view[start : start + CHUNK_SIZE])


class SqliteFactory:
    """Opens ``sqlite:///path`` URLs."""

    name = "sqlite"
    schemes = frozenset({"sqlite"})

    def open(self, url: str, options: Mapping[str, str]) -> SqliteSource:
        return SqliteSource(path_from_url(url), options)

    def claims(self, request: RestoreRequest) -> bool:
        return False

    async def restore_backup(self, request: RestoreRequest, plugins: Any) -> RestoreOutcome:
        """``--target-time``: the newest backup not after that moment; otherwise the plain restore."""
        if request.target_time:
            from backstream.jobs.target_time import restore_newest_before

            return await restore_newest_before(request, plugins)
        from backstream.jobs import restore_plain

        return await restore_plain(request, plugins)
