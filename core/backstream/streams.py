"""Ready-made sources and sinks: local files (read and written in worker threads) and memory.

Local file sinks are atomic: data goes to a temporary file that replaces the target on commit.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import anyio
import anyio.to_thread

from backstream.chunks import CHUNK_SIZE
from backstream.errors import SourceError, StorageError
from backstream.protocols import ByteWriter

READ_SIZE = 16 * CHUNK_SIZE
"""Bytes per blocking read, so that one thread hop moves several chunks."""


@asynccontextmanager
async def file_source(path: str | os.PathLike[str]) -> AsyncIterator[AsyncIterator[bytes]]:
    """Stream a local file in chunks; a missing or unreadable file raises SourceError."""
    try:
        handle = await anyio.to_thread.run_sync(open, os.fspath(path), "rb")
    except OSError as exc:
        raise SourceError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from exc

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            data = await anyio.to_thread.run_sync(handle.read, READ_SIZE)
            if not data:
                return
            yield data

    try:
        yield chunks()
    finally:
        await anyio.to_thread.run_sync(handle.close)


@asynccontextmanager
async def iterable_source(data: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[AsyncIterator[bytes]]:
    """Wrap in-memory chunks (or any async iterable) as a source; empty chunks are dropped."""

    async def chunks() -> AsyncIterator[bytes]:
        if isinstance(data, AsyncIterable):
            async for chunk in data:
                if chunk:
                    yield chunk
        else:
            for chunk in data:
                if chunk:
                    yield chunk

    yield chunks()


class _FileWriter:
    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._pending: list[bytes] = []
        self._pending_size = 0

    async def write(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= READ_SIZE:
            await self.flush()

    async def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            await anyio.to_thread.run_sync(self._handle.write, data)


@asynccontextmanager
async def file_sink(path: str | os.PathLike[str], *, fsync: bool = True) -> AsyncIterator[ByteWriter]:
    """Write a local file atomically: nothing appears at ``path`` unless the block exits cleanly."""
    target = Path(os.path.realpath(path))  # replace a symlink's target, not the link
    if await anyio.to_thread.run_sync(_is_special, target):
        # A device or FIFO (/dev/null, a named pipe) cannot be replaced atomically: write into it.
        async with _special_file_sink(target) as writer:
            yield writer
        return
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        handle = await anyio.to_thread.run_sync(open, temporary, "xb")
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    writer = _FileWriter(handle)
    committed = False
    try:
        try:
            yield writer
            await writer.flush()
            if fsync:
                await anyio.to_thread.run_sync(_sync_close, handle)
            else:
                await anyio.to_thread.run_sync(handle.close)
            await anyio.to_thread.run_sync(os.replace, temporary, target)
            committed = True
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        if not committed:
            with anyio.CancelScope(shield=True):  # clean up even when the run was cancelled
                await anyio.to_thread.run_sync(_discard, handle, temporary)


def _is_special(target: Path) -> bool:
    try:
        return not stat.S_ISREG(target.stat().st_mode)
    except FileNotFoundError:
        return False


@asynccontextmanager
async def _special_file_sink(target: Path) -> AsyncIterator[ByteWriter]:
    try:
        handle = await anyio.to_thread.run_sync(open, target, "wb")
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    writer = _FileWriter(handle)
    try:
        yield writer
        await writer.flush()
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(handle.close)


def _sync_close(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _discard(handle: BinaryIO, temporary: Path) -> None:
    try:
        handle.close()
    except OSError:
        pass
    temporary.unlink(missing_ok=True)


class MemoryWriter:
    """Collects chunks; ``data`` holds them only after a clean commit."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self.data: bytes | None = None

    async def write(self, chunk: bytes) -> None:
        self._chunks.append(chunk)


@asynccontextmanager
async def memory_sink(writer: MemoryWriter) -> AsyncIterator[ByteWriter]:
    """A sink into memory (for tests and small objects); commits to ``writer.data``."""
    yield writer
    writer.data = b"".join(writer._chunks)
