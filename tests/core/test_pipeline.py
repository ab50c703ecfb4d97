"""The pipeline's contract: chunking, ordering, digest, metrics, backpressure, and teardown.

Stages here are small in-test codecs; the built-in plugins have their own tests.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from backstream import (
    CHUNK_SIZE,
    ByteWriter,
    LateTransform,
    MemoryWriter,
    Pipeline,
    SourceError,
    StorageError,
    Transform,
    file_sink,
    iterable_source,
    memory_sink,
)
from hypothesis import given, settings
from hypothesis import strategies as st


class Upper:
    """Upper-cases ASCII; output size equals input size."""

    def update(self, chunk: bytes) -> bytes:
        return chunk.upper()

    def finish(self) -> bytes:
        return b""


class Doubler:
    """Emits every byte twice, so outputs exceed CHUNK_SIZE and must be re-cut."""

    def update(self, chunk: bytes) -> bytes:
        return bytes(b for b in chunk for _ in range(2))

    def finish(self) -> bytes:
        return b"<end>"


class Recorder:
    """Passes data through and records the size of every chunk it was given."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def update(self, chunk: bytes) -> bytes:
        self.sizes.append(len(chunk))
        return chunk

    def finish(self) -> bytes:
        return b""


class Exploding:
    def __init__(self, after: int) -> None:
        self.left = after

    def update(self, chunk: bytes) -> bytes:
        self.left -= len(chunk)
        if self.left <= 0:
            raise ValueError("codec exploded")
        return chunk

    def finish(self) -> bytes:
        return b""


def run(pipeline: Pipeline):  # type: ignore[no-untyped-def]
    return anyio.run(pipeline.run)


@given(
    pieces=st.lists(st.binary(min_size=0, max_size=3 * CHUNK_SIZE), max_size=6),
    threaded=st.booleans(),
)
@settings(max_examples=40, deadline=None)
def test_output_is_the_transformed_input_in_order_whatever_the_chunking(pieces: list[bytes], threaded: bool) -> None:
    writer = MemoryWriter()
    result = run(
        Pipeline(iterable_source(pieces), [Transform("upper", Upper(), threaded=threaded)], memory_sink(writer))
    )
    expected = b"".join(pieces).upper()
    assert writer.data == expected
    assert result.bytes_in == len(expected) and result.bytes_out == len(expected)
    assert result.sha256 == hashlib.sha256(expected).hexdigest()


def test_every_stage_receives_non_empty_chunks_of_at_most_chunk_size() -> None:
    recorder = Recorder()
    source = [b"", b"x" * (5 * CHUNK_SIZE + 7), b"", b"y"]
    writer = MemoryWriter()
    run(
        Pipeline(
            iterable_source(source),
            [Transform("double", Doubler()), Transform("record", recorder)],
            memory_sink(writer),
        )
    )
    assert recorder.sizes and all(0 < size <= CHUNK_SIZE for size in recorder.sizes)
    assert sum(recorder.sizes) == 2 * (5 * CHUNK_SIZE + 8) + len(b"<end>")


def test_sha256_is_of_the_stored_bytes_not_the_source() -> None:
    writer = MemoryWriter()
    result = run(Pipeline(iterable_source([b"abc"]), [Transform("double", Doubler())], memory_sink(writer)))
    assert writer.data == b"aabbcc<end>"
    assert result.sha256 == hashlib.sha256(b"aabbcc<end>").hexdigest()
    assert (result.bytes_in, result.bytes_out) == (3, len(b"aabbcc<end>"))


def test_without_transforms_the_source_is_stored_unchanged() -> None:
    writer = MemoryWriter()
    result = run(Pipeline(iterable_source([b"hello ", b"world"]), [], memory_sink(writer)))
    assert writer.data == b"hello world"
    assert result.sha256 == hashlib.sha256(b"hello world").hexdigest()


def test_metrics_name_every_stage_and_count_bytes() -> None:
    writer = MemoryWriter()
    data = b"z" * (3 * CHUNK_SIZE)
    result = run(Pipeline(iterable_source([data]), [Transform("upper", Upper())], memory_sink(writer)))
    assert [stage.name for stage in result.stages] == ["source", "upper", "sink"]
    upper = result.stages[1]
    assert upper.bytes_in == upper.bytes_out == len(data)
    assert all(stage.busy_seconds >= 0 and stage.wait_input_seconds >= 0 for stage in result.stages)
    assert result.elapsed_seconds > 0


@asynccontextmanager
async def failing_source(good_chunks: int) -> AsyncIterator[AsyncIterator[bytes]]:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(good_chunks):
            yield b"d" * CHUNK_SIZE
        raise SourceError("dump tool died halfway")

    yield chunks()


@asynccontextmanager
async def source_failing_on_exit() -> AsyncIterator[AsyncIterator[bytes]]:
    """Yields all its data, then reports failure as it closes (like a non-zero exit status)."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"complete-looking data"

    yield chunks()
    raise SourceError("pg_dump exited with status 1")


def test_a_source_failing_mid_stream_raises_its_error_and_commits_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "out.bin"
    with pytest.raises(SourceError, match="died halfway"):
        run(Pipeline(failing_source(40), [Transform("upper", Upper())], file_sink(target)))
    assert list(tmp_path.iterdir()) == []


def test_a_source_failing_at_exit_commits_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "out.bin"
    with pytest.raises(SourceError, match="status 1"):
        run(Pipeline(source_failing_on_exit(), [Transform("upper", Upper())], file_sink(target)))
    assert list(tmp_path.iterdir()) == []


def test_a_failing_transform_raises_its_error_and_commits_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "out.bin"
    source = iterable_source([b"x" * CHUNK_SIZE] * 20)
    with pytest.raises(ValueError, match="exploded"):
        run(Pipeline(source, [Transform("boom", Exploding(after=5 * CHUNK_SIZE))], file_sink(target)))
    assert list(tmp_path.iterdir()) == []


def test_a_late_transform_is_made_while_the_source_already_streams() -> None:
    opened = anyio.Event()
    read_so_far: list[int] = []

    @asynccontextmanager
    async def source() -> AsyncIterator[AsyncIterator[bytes]]:
        async def chunks() -> AsyncIterator[bytes]:
            for n in range(8):
                read_so_far.append(n)
                yield bytes([65 + n]) * CHUNK_SIZE
                if n == 1:
                    opened.set()

        yield chunks()

    async def make() -> Upper:
        # The source must be open and flowing before the codec exists: a pipeline that made the
        # codec first would wait here forever.
        with anyio.fail_after(10):
            await opened.wait()
        assert read_so_far, "the source was not read while the late codec was being made"
        return Upper()

    writer = MemoryWriter()
    result = run(
        Pipeline(source(), [Transform("doubler", Doubler()), LateTransform("late-upper", make)], memory_sink(writer))
    )
    expected = Doubler()
    want = b"".join(expected.update(bytes([65 + n]) * CHUNK_SIZE) for n in range(8)) + expected.finish()
    assert writer.data == want.upper()
    assert [stage.name for stage in result.stages] == ["source", "doubler", "late-upper", "sink"]
    assert result.sha256 == hashlib.sha256(want.upper()).hexdigest()


def test_a_late_transform_that_cannot_be_made_fails_the_run_and_commits_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    closed: list[bool] = []

    @asynccontextmanager
    async def source() -> AsyncIterator[AsyncIterator[bytes]]:
        async def chunks() -> AsyncIterator[bytes]:
            while True:
                yield b"x" * CHUNK_SIZE

        try:
            yield chunks()
        finally:
            closed.append(True)

    async def make() -> Upper:
        await anyio.sleep(0.05)
        raise StorageError("the key service is unreachable")

    with pytest.raises(StorageError, match="key service"):
        run(Pipeline(source(), [LateTransform("encrypt", make)], file_sink(tmp_path / "out.bin")))
    assert list(tmp_path.iterdir()) == []
    assert closed == [True]


class FailingWriter:
    def __init__(self, after: int) -> None:
        self.left = after

    async def write(self, chunk: bytes) -> None:
        self.left -= 1
        if self.left < 0:
            raise StorageError("storage went away")


def test_a_failing_sink_stops_the_source_and_raises_its_error() -> None:
    produced = 0

    @asynccontextmanager
    async def endless() -> AsyncIterator[AsyncIterator[bytes]]:
        async def chunks() -> AsyncIterator[bytes]:
            nonlocal produced
            while True:
                produced += 1
                yield b"e" * CHUNK_SIZE

        yield chunks()

    @asynccontextmanager
    async def sink() -> AsyncIterator[ByteWriter]:
        yield FailingWriter(after=3)

    with pytest.raises(StorageError, match="went away"):
        run(Pipeline(endless(), [Transform("upper", Upper())], sink()))
    assert produced < 200  # torn down, not drained


def test_cancelling_a_run_commits_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def slow() -> AsyncIterator[AsyncIterator[bytes]]:
        async def chunks() -> AsyncIterator[bytes]:
            while True:
                yield b"s" * CHUNK_SIZE
                await anyio.sleep(0.001)

        yield chunks()

    async def main() -> None:
        with anyio.move_on_after(0.2):
            await Pipeline(slow(), [Transform("upper", Upper())], file_sink(tmp_path / "out.bin")).run()

    anyio.run(main)
    assert list(tmp_path.iterdir()) == []


def test_a_slow_sink_holds_back_the_source_with_bounded_buffering() -> None:
    produced = 0
    written = 0

    @asynccontextmanager
    async def fast() -> AsyncIterator[AsyncIterator[bytes]]:
        async def chunks() -> AsyncIterator[bytes]:
            nonlocal produced
            for _ in range(400):
                produced += 1
                yield b"f" * CHUNK_SIZE

        yield chunks()

    class SlowWriter:
        max_lead = 0

        async def write(self, chunk: bytes) -> None:
            nonlocal written
            written += 1
            SlowWriter.max_lead = max(SlowWriter.max_lead, produced - written)
            await anyio.sleep(0.0005)

    @asynccontextmanager
    async def sink() -> AsyncIterator[ByteWriter]:
        yield SlowWriter()

    run(Pipeline(fast(), [Transform("upper", Upper())], sink()))
    assert written == 400
    # Two links plus one batch in flight: the lead is bounded, independent of stream length.
    assert SlowWriter.max_lead <= 4 * 32 + 2


class ThreadRecorder:
    """Passes data through and records which thread ran every call."""

    def __init__(self) -> None:
        self.threads: set[int] = set()

    def update(self, chunk: bytes) -> bytes:
        self.threads.add(threading.get_ident())
        return chunk

    def finish(self) -> bytes:
        self.threads.add(threading.get_ident())
        return b""


def test_each_threaded_stage_runs_in_one_long_lived_thread_of_its_own() -> None:
    first, second = ThreadRecorder(), ThreadRecorder()
    source = iterable_source([b"t" * CHUNK_SIZE] * 64)
    run(Pipeline(source, [Transform("a", first), Transform("b", second)], memory_sink(MemoryWriter())))
    assert len(first.threads) == 1 and len(second.threads) == 1
    assert first.threads != second.threads
    assert threading.get_ident() not in first.threads | second.threads


def test_cancelling_while_a_worker_thread_waits_on_a_full_link_stops_it_and_commits_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    calls_after_return: list[int] = []
    returned = threading.Event()

    class Counting(Upper):
        def update(self, chunk: bytes) -> bytes:
            if returned.is_set():
                calls_after_return.append(len(chunk))
            return chunk.upper()

    @asynccontextmanager
    async def endless() -> AsyncIterator[AsyncIterator[bytes]]:
        async def chunks() -> AsyncIterator[bytes]:
            while True:
                yield b"c" * CHUNK_SIZE

        yield chunks()

    @asynccontextmanager
    async def stalled_sink() -> AsyncIterator[ByteWriter]:
        class Stalled:
            async def write(self, chunk: bytes) -> None:
                await anyio.sleep_forever()

        yield Stalled()

    async def main() -> bool:
        with anyio.move_on_after(0.3) as scope:
            await Pipeline(endless(), [Transform("a", Counting()), Transform("b", Counting())], stalled_sink()).run()
        return scope.cancelled_caught

    assert anyio.run(main) is True  # the caller's cancellation propagates, not an error
    returned.set()
    time.sleep(0.05)
    assert calls_after_return == []


class BlockingPieces:
    """A BlockingChunks stream over a list, recording the reading threads; None (nothing yet)
    between pieces, and forever after them when ``endless``."""

    def __init__(self, pieces: list[bytes], *, endless: bool = False) -> None:
        self._pieces = list(pieces)
        self._endless = endless
        self._tick = False
        self.threads: set[int] = set()

    def read_blocking(self, timeout: float) -> bytes | None:
        self.threads.add(threading.get_ident())
        self._tick = not self._tick
        if self._tick:
            return None
        if self._pieces:
            return self._pieces.pop(0)
        if self._endless:
            time.sleep(min(timeout, 0.01))
            return None
        return b""

    def __aiter__(self) -> BlockingPieces:
        return self

    async def __anext__(self) -> bytes:
        raise AssertionError("the pipeline must read a BlockingChunks stream off the loop")


def blocking_source(stream: BlockingPieces):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def source() -> AsyncIterator[BlockingPieces]:
        yield stream

    return source()


def test_a_blocking_chunk_stream_is_read_in_a_worker_thread_and_arrives_whole() -> None:
    pieces = [bytes([n]) * (n * 997 % CHUNK_SIZE + 1) for n in range(1, 60)]
    stream = BlockingPieces(pieces)
    writer = MemoryWriter()
    result = run(Pipeline(blocking_source(stream), [Transform("upper", Upper())], memory_sink(writer)))
    assert writer.data == b"".join(pieces).upper()
    assert result.bytes_in == sum(map(len, pieces))
    assert threading.get_ident() not in stream.threads and len(stream.threads) == 1


def test_a_failing_sink_stops_a_blocking_reader_that_is_waiting_for_data() -> None:
    stream = BlockingPieces([b"w" * CHUNK_SIZE] * 40, endless=True)

    @asynccontextmanager
    async def sink() -> AsyncIterator[ByteWriter]:
        yield FailingWriter(after=3)

    with pytest.raises(StorageError, match="went away"):
        run(Pipeline(blocking_source(stream), [Transform("upper", Upper())], sink()))


class Trickle(BlockingPieces):
    """A source that never pauses for long: a 100-byte piece every 20 ms, without end."""

    def __init__(self) -> None:
        super().__init__([])

    def read_blocking(self, timeout: float) -> bytes | None:
        time.sleep(0.02)
        return b"t" * 100


def test_a_cancelled_run_stops_a_reader_whose_source_trickles_without_pause() -> None:
    """The reader learns of the abort at its next read, not when its 256 KiB batch fills (~50 s here)."""

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(Pipeline(blocking_source(Trickle()), [], memory_sink(MemoryWriter())).run)
            await anyio.sleep(0.3)
            tg.cancel_scope.cancel()

    started = time.monotonic()
    anyio.run(main)
    assert time.monotonic() - started < 5
