"""PipeChunks: a dump tool's stdout read as chunks by a pipeline's worker thread.

Full chunks when the tool writes quickly in small pieces, short ones when it writes slowly.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from backstream import CHUNK_SIZE, PipeChunks, make_pipe


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = make_pipe()
    yield read_fd, write_fd
    for fd in (read_fd, write_fd):
        try:
            os.close(fd)
        except OSError:
            pass


def read_all(chunks: PipeChunks) -> list[bytes]:
    out = []
    while (chunk := chunks.read_blocking(5.0)) != b"":
        assert chunk is not None, "nothing came for 5 s"
        out.append(chunk)
    return out


def test_data_already_in_the_pipe_comes_out_in_full_chunks(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    data = os.urandom(3 * CHUNK_SIZE + 100)
    os.write(write_fd, data)
    os.close(write_fd)
    chunks = read_all(PipeChunks(read_fd))
    assert [len(c) for c in chunks] == [CHUNK_SIZE, CHUNK_SIZE, CHUNK_SIZE, 100]
    assert b"".join(chunks) == data


def test_small_quick_writes_are_gathered_into_full_chunks(pipe: tuple[int, int]) -> None:
    """A tool writing 4 KiB at a time, a little slower than the reader, still yields full chunks."""
    read_fd, write_fd = pipe
    data = os.urandom(8 * CHUNK_SIZE)

    def writer() -> None:
        for start in range(0, len(data), 4096):
            os.write(write_fd, data[start : start + 4096])
            if start % (16 * 4096) == 0:
                time.sleep(0.0002)
        os.close(write_fd)

    thread = threading.Thread(target=writer)
    thread.start()
    chunks = read_all(PipeChunks(read_fd))
    thread.join()
    assert b"".join(chunks) == data
    full = sum(len(c) == CHUNK_SIZE for c in chunks)
    assert full >= len(chunks) - 2, [len(c) for c in chunks]


def test_a_slow_writer_gets_its_bytes_handed_on_without_waiting_for_a_full_chunk(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            os.write(write_fd, b"x" * 10)
            time.sleep(0.001)

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        chunks = PipeChunks(read_fd)
        started = time.monotonic()
        first = chunks.read_blocking(5.0)
        waited = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
    assert first is not None and 0 < len(first) < CHUNK_SIZE
    assert waited < 1.0  # bounded by GATHER_LIMIT (20 ms), not by the 64 KiB the writer would need minutes for


def test_nothing_written_within_the_timeout_is_reported_as_none(pipe: tuple[int, int]) -> None:
    read_fd, _ = pipe
    assert PipeChunks(read_fd).read_blocking(0.01) is None


def test_end_of_file_is_an_empty_chunk_and_sets_at_end(pipe: tuple[int, int]) -> None:
    read_fd, write_fd = pipe
    os.write(write_fd, b"abc")
    os.close(write_fd)
    chunks = PipeChunks(read_fd)
    assert chunks.read_blocking(1.0) == b"abc"
    assert chunks.read_blocking(1.0) == b""
    assert chunks.at_end
