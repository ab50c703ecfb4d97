"""Chunk size and helpers that keep streams in the chunk contract.

A stream is an async iterator of non-empty ``bytes`` chunks of at most ``CHUNK_SIZE``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterator

CHUNK_SIZE = 64 * 1024


def split(data: bytes, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield ``data`` as non-empty pieces of at most ``size`` bytes (nothing for empty data)."""
    if len(data) <= size:
        if data:
            yield data
        return
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])


async def rechunk(stream: AsyncIterable[bytes], size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    """Re-cut any byte stream into chunks of exactly ``size`` bytes; only the last may be shorter."""
    pending = bytearray()
    async for chunk in stream:
        pending += chunk
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)
