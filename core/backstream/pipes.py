"""A child process's stdout read through a pipe of our own, as a chunk stream a pipeline reads off
the event loop (``BlockingChunks``): one ``os.read`` per piece, no asyncio transport in between.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable

import anyio

from backstream.chunks import CHUNK_SIZE

PIPE_SIZE = 1024 * 1024
"""Capacity asked for the pipe (Linux default: 64 KiB): the tool runs ahead instead of stalling
while a stage is busy, and reads come back full."""


def make_pipe() -> tuple[int, int]:
    """A new pipe ``(read_fd, write_fd)``, grown to PIPE_SIZE where the system allows. Pass the
    write end as the child's stdout, then close it in the parent so that EOF comes when the child
    exits."""
    read_fd, write_fd = os.pipe()
    try:
        import fcntl

        fcntl.fcntl(write_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
    except (ImportError, OSError):
        pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default size works too
    return read_fd, write_fd


class PipeChunks:
    """The read end of a pipe as a chunk stream: read by a pipeline's worker thread
    (``read_blocking``) or iterated on the event loop. ``observe``, if given, sees every chunk
    (in the reading thread). ``at_end`` tells whether EOF was reached. The caller closes ``fd``.
    """

    GATHER_SECONDS = 0.001
    """After a short read, how long ``read_blocking`` sleeps before it reads again; after two such
    sleeps in a row with nothing new it hands on less than a full chunk. Dump tools write 4-8 KiB
    at a time: waking on each write (as polling would) costs a thread wake-up and a GIL hand-off
    per 4 KiB, ~0.1 CPU s per 268 MB dump; one sleep lets the tool fill the chunk (a dump runs at
    ~250 KB/ms)."""

    GATHER_LIMIT = 0.02
    """A chunk is handed on at the latest this long after its first bytes came, however slowly
    the tool writes."""

    def __init__(self, fd: int, observe: Callable[[bytes], object] | None = None) -> None:
        self._fd = fd
        self._observe = observe
        self.at_end = False
        os.set_blocking(fd, False)
        self._poll = select.poll()  # not select(): it fails for descriptors above 1023
        self._poll.register(fd, select.POLLIN)

    def read_blocking(self, timeout: float) -> bytes | None:
        """The next chunk (up to CHUNK_SIZE), ``b""`` at EOF, None if nothing came in ``timeout`` s."""
        pieces: list[bytes] = []
        size = 0
        idle = 0  # sleeps in a row that brought nothing
        deadline = 0.0
        while size < CHUNK_SIZE and not self.at_end:
            try:
                data = os.read(self._fd, CHUNK_SIZE - size)
            except BlockingIOError:
                if not pieces:
                    if not self._poll.poll(timeout * 1000):
                        break
                elif idle >= 2 or time.monotonic() >= deadline:
                    break  # the tool writes slowly: hand on what there is
                else:
                    time.sleep(self.GATHER_SECONDS)
                    idle += 1
                continue
            if not data:
                self.at_end = True
                break
            if not pieces:
                deadline = time.monotonic() + self.GATHER_LIMIT
            pieces.append(data)
            size += len(data)
            idle = 0
        if not pieces:
            return b"" if self.at_end else None
        return self._seen(pieces[0] if len(pieces) == 1 else b"".join(pieces))

    def __aiter__(self) -> PipeChunks:
        return self

    async def __anext__(self) -> bytes:
        while not self.at_end:
            await anyio.wait_readable(self._fd)
            try:
                data = os.read(self._fd, CHUNK_SIZE)
            except BlockingIOError:
                continue
            if data:
                return self._seen(data)
            self.at_end = True
        raise StopAsyncIteration

    def _seen(self, chunk: bytes) -> bytes:
        if self._observe is not None:
            self._observe(chunk)
        return chunk
