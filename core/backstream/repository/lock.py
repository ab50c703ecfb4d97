"""Repository locks under ``locks/``: shared for backups, exclusive for deletes, with stale-lock recovery.

A lock is a small JSON file naming its holder (host, pid, process start) and a heartbeat that the
holder refreshes; a lock whose process is gone on this host, or whose heartbeat is older than its
``stale_after``, is broken with a warning by the next writer.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import anyio

from backstream.errors import BackstreamError, RepositoryError
from backstream.protocols import Storage
from backstream.repository.blobs import list_under, read_small, write_small
from backstream.repository.ids import format_time, parse_time, utc_now

log = logging.getLogger(__name__)

LOCKS_PREFIX = "locks/"
STALE_AFTER = 300.0
"""Seconds without a heartbeat after which any lock counts as stale."""
HEARTBEAT_INTERVAL = 30.0
"""Seconds between two refreshes of a held lock."""


@dataclass(frozen=True)
class LockInfo:
    """The contents of one lock file."""

    lock_id: str
    operation: str
    exclusive: bool
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    stale_after: float = STALE_AFTER
    process_start: str | None = None
    process_space: str | None = None
    """Boot id and pid namespace of the holder: its pid means something here only if they match ours."""
    backup_id: str | None = None

    @property
    def path(self) -> str:
        return f"{LOCKS_PREFIX}{self.lock_id}.json"

    @property
    def expires_at(self) -> datetime:
        return self.heartbeat_at + timedelta(seconds=self.stale_after)

    def describe(self) -> str:
        what = f"{self.operation} {self.backup_id}" if self.backup_id else self.operation
        return f"{what} by pid {self.pid} on {self.host} since {format_time(self.started_at)}"

    def to_json(self) -> bytes:
        document = {
            "format": "backstream-lock",
            "lock_id": self.lock_id,
            "operation": self.operation,
            "exclusive": self.exclusive,
            "host": self.host,
            "pid": self.pid,
            "process_start": self.process_start,
            "process_space": self.process_space,
            "backup_id": self.backup_id,
            "started_at": format_time(self.started_at),
            "heartbeat_at": format_time(self.heartbeat_at),
            "stale_after": self.stale_after,
            "expires_at": format_time(self.expires_at),
        }
        return (json.dumps(document, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> LockInfo:
        document: Any = json.loads(data)
        if not isinstance(document, dict) or document.get("format") != "backstream-lock":
            raise ValueError("not a backstream lock")
        return cls(
            lock_id=str(document["lock_id"]),
            operation=str(document["operation"]),
            exclusive=bool(document["exclusive"]),
            host=str(document["host"]),
            pid=int(document["pid"]),
            process_start=None if document.get("process_start") is None else str(document["process_start"]),
            process_space=None if document.get("process_space") is None else str(document["process_space"]),
            backup_id=None if document.get("backup_id") is None else str(document["backup_id"]),
            started_at=parse_time(str(document["started_at"])),
            heartbeat_at=parse_time(str(document["heartbeat_at"])),
            stale_after=float(document["stale_after"]),
        )


def this_host() -> str:
    return socket.gethostname()


def stale_reason(lock: LockInfo, *, now: datetime | None = None, host: str | None = None) -> str | None:
    """Why ``lock`` is stale (its process is gone on this host, or its heartbeat expired), else None.

    The process check applies only to a holder in our own process space (same host name, boot and
    pid namespace): a container with the same host name is judged by its heartbeat alone."""
    now = now or utc_now()
    same_space = lock.host == (host or this_host()) and lock.process_space == process_space()
    if same_space and not _process_alive(lock.pid, lock.process_start):
        return f"its process {lock.pid} on {lock.host} is gone"
    if now > lock.expires_at:
        return f"its last heartbeat was at {format_time(lock.heartbeat_at)} (older than {lock.stale_after:g}s)"
    return None


async def read_locks(storage: Storage) -> list[tuple[str, LockInfo | None]]:
    """Every lock file as ``(path, info)``; ``info`` is None for a file that is not a valid lock."""
    found: list[tuple[str, LockInfo | None]] = []
    for path in await list_under(storage, LOCKS_PREFIX):
        if not path.endswith(".json"):
            continue
        try:
            data = await read_small(storage, path, limit=1024 * 1024)
        except BackstreamError:
            if not await storage.exists(path):
                continue  # released while we listed
            found.append((path, None))
            continue
        try:
            found.append((path, LockInfo.from_json(data)))
        except (ValueError, KeyError, TypeError):
            found.append((path, None))
    return found


@asynccontextmanager
async def hold_lock(
    storage: Storage,
    operation: str,
    *,
    exclusive: bool,
    backup_id: str | None = None,
    stale_after: float = STALE_AFTER,
    heartbeat_interval: float = HEARTBEAT_INTERVAL,
) -> AsyncIterator[LockInfo]:
    """Hold a repository lock for the block; refresh its heartbeat meanwhile; release it on exit.

    Shared locks (backups) coexist; an exclusive lock (delete, prune) conflicts with every other
    lock. A conflicting live lock raises RepositoryError; stale locks are removed with a warning.
    """
    now = utc_now()
    mine = LockInfo(
        lock_id=f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(6)}",
        operation=operation,
        exclusive=exclusive,
        host=this_host(),
        pid=os.getpid(),
        process_start=_process_start(os.getpid()),
        process_space=process_space(),
        backup_id=backup_id,
        started_at=now,
        heartbeat_at=now,
        stale_after=stale_after,
    )
    await write_small(storage, mine.path, mine.to_json())
    try:
        await _check_conflicts(storage, mine)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _remove(storage, mine.path)
        raise
    error: BaseException | None = None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_heartbeat, storage, mine, heartbeat_interval)
            try:
                yield mine
            except BaseException as exc:  # re-raised below as itself, not inside a task-group group
                error = exc
            finally:
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await _remove(storage, mine.path)
    if error is not None:
        raise error


async def _check_conflicts(storage: Storage, mine: LockInfo) -> None:
    for path, other in await read_locks(storage):
        if path == mine.path:
            continue
        if other is None:
            log.warning("ignoring %s: it is not a valid lock file (remove it if it is garbage)", path)
            continue
        reason = stale_reason(other)
        if reason is not None:
            log.warning("breaking stale lock %s (%s): %s", path, other.describe(), reason)
            await _remove(storage, path)
            continue
        if mine.exclusive or other.exclusive:
            raise RepositoryError(
                f"repository is locked ({other.describe()}); if that process is gone the lock "
                f"expires at {format_time(other.expires_at)}, or remove {path}"
            )


async def _heartbeat(storage: Storage, lock: LockInfo, interval: float) -> None:
    while True:
        await anyio.sleep(interval)
        lock = replace(lock, heartbeat_at=utc_now())
        try:
            await write_small(storage, lock.path, lock.to_json())
        except Exception as exc:  # keep working; the lock only expires if this persists
            log.warning("could not refresh lock %s: %s", lock.path, exc)


async def _remove(storage: Storage, path: str) -> None:
    try:
        await storage.delete(path)
    except BackstreamError as exc:
        log.warning("could not remove lock %s: %s", path, exc)


def process_space() -> str | None:
    """This process's boot id and pid namespace (Linux), e.g. ``14b4...e96216/pid:[4026531836]``."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            boot = handle.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}"


def _proc_stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    # Fields after the command name, which is in parentheses and may contain spaces.
    return text.rsplit(")", 1)[-1].split()


def _process_start(pid: int) -> str | None:
    """The process start time in clock ticks since boot (Linux), to tell a reused pid apart."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def _process_alive(pid: int, process_start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return True
    fields = _proc_stat(pid)
    if fields is None:
        return True  # not Linux, or no /proc: trust kill(0)
    if fields[0] in {"Z", "X"}:
        return False  # a zombie holds nothing
    return not (process_start is not None and len(fields) > 19 and fields[19] != process_start)
