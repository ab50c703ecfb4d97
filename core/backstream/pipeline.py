"""The streaming pipeline: source -> transforms -> sink, linked by small bounded streams.

Each transform runs its codec in a worker thread (codecs release the GIL), so stages overlap on
different cores; errors or cancellation tear every stage down and the sink commits nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from backstream.chunks import split
from backstream.protocols import ByteSink, ByteSource, Codec

LINK_CHUNKS = 32
"""Chunks buffered between two stages (memory per link <= LINK_CHUNKS * CHUNK_SIZE)."""

BATCH_CHUNKS = 32
"""Most chunks a transform hands to its worker thread in one call (amortises the thread hop)."""


@dataclass(frozen=True)
class Transform:
    """A named codec placed in the pipeline. ``threaded=False`` keeps a trivial codec on the loop."""

    name: str
    codec: Codec
    threaded: bool = True


@dataclass
class StageMetrics:
    """Time one stage spent working, waiting for input and blocked on output, and bytes seen."""

    name: str
    busy_seconds: float = 0.0
    wait_input_seconds: float = 0.0
    wait_output_seconds: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass(frozen=True)
class PipelineResult:
    """What a completed run did: bytes read from the source, bytes stored, their sha256, timings."""

    bytes_in: int
    bytes_out: int
    sha256: str
    elapsed_seconds: float
    stages: tuple[StageMetrics, ...] = field(default_factory=tuple)


class Pipeline:
    """Run ``source -> transforms -> sink`` once with ``await pipeline.run()``."""

    def __init__(
        self,
        source: ByteSource,
        transforms: Sequence[Transform],
        sink: ByteSink,
        *,
        limiter: anyio.CapacityLimiter | None = None,
    ) -> None:
        self._source = source
        self._transforms = tuple(transforms)
        self._sink = sink
        self._limiter = limiter

    async def run(self) -> PipelineResult:
        """Stream everything through; commit the sink only if every stage finished cleanly."""
        limiter = self._limiter or anyio.CapacityLimiter(max(1, len(self._transforms)))
        source_metrics = StageMetrics("source")
        transform_metrics = [StageMetrics(t.name) for t in self._transforms]
        sink_metrics = StageMetrics("sink")
        digest = hashlib.sha256()
        started = time.perf_counter()
        try:
            async with self._sink as writer:
                async with anyio.create_task_group() as tg:
                    send, receive = _link()
                    tg.start_soon(_run_source, self._source, send, source_metrics)
                    for index, transform in enumerate(self._transforms):
                        next_send, next_receive = _link()
                        last = index == len(self._transforms) - 1
                        tg.start_soon(
                            _run_transform,
                            transform,
                            receive,
                            next_send,
                            transform_metrics[index],
                            limiter,
                            digest.update if last else None,
                        )
                        receive = next_receive
                    hash_in_sink = not self._transforms
                    async with receive:
                        while True:
                            mark = time.perf_counter()
                            try:
                                chunk = await receive.receive()
                            except anyio.EndOfStream:
                                sink_metrics.wait_input_seconds += time.perf_counter() - mark
                                break
                            now = time.perf_counter()
                            sink_metrics.wait_input_seconds += now - mark
                            if hash_in_sink:
                                digest.update(chunk)
                            await writer.write(chunk)
                            sink_metrics.busy_seconds += time.perf_counter() - now
                            sink_metrics.bytes_in += len(chunk)
                            sink_metrics.bytes_out += len(chunk)
        except BaseExceptionGroup as group:
            raise _primary(group) from None
        return PipelineResult(
            bytes_in=source_metrics.bytes_out,
            bytes_out=sink_metrics.bytes_out,
            sha256=digest.hexdigest(),
            elapsed_seconds=time.perf_counter() - started,
            stages=(source_metrics, *transform_metrics, sink_metrics),
        )


def _link() -> tuple[MemoryObjectSendStream[bytes], MemoryObjectReceiveStream[bytes]]:
    return anyio.create_memory_object_stream[bytes](max_buffer_size=LINK_CHUNKS)


def _primary(group: BaseExceptionGroup) -> BaseException:
    """The exception that caused a task group to fail (not the cancellations it caused)."""
    cancelled = anyio.get_cancelled_exc_class()
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        elif not isinstance(exc, cancelled):
            leaves.append(exc)

    walk(group)
    return leaves[0] if leaves else group


async def _run_source(source: ByteSource, send: MemoryObjectSendStream[bytes], metrics: StageMetrics) -> None:
    async with send:
        async with source as chunks:
            mark = time.perf_counter()
            async for chunk in chunks:
                now = time.perf_counter()
                metrics.busy_seconds += now - mark
                metrics.bytes_in += len(chunk)
                for piece in split(chunk):
                    await send.send(piece)
                    metrics.bytes_out += len(piece)
                mark = time.perf_counter()
                metrics.wait_output_seconds += mark - now
        # The source context exited cleanly (a dump tool's exit status is checked there):
        # only now may downstream see end-of-stream.


async def _run_transform(
    transform: Transform,
    receive: MemoryObjectReceiveStream[bytes],
    send: MemoryObjectSendStream[bytes],
    metrics: StageMetrics,
    limiter: anyio.CapacityLimiter,
    observe: Callable[[bytes], object] | None,
) -> None:
    codec = transform.codec

    def process(batch: list[bytes]) -> bytes:
        out = b"".join([codec.update(chunk) for chunk in batch])
        if observe is not None and out:
            observe(out)
        return out

    def flush() -> bytes:
        out = codec.finish()
        if observe is not None and out:
            observe(out)
        return out

    async def run(func: Callable[..., bytes], *args: list[bytes]) -> bytes:
        if transform.threaded:
            return await anyio.to_thread.run_sync(func, *args, limiter=limiter)
        return func(*args)

    async with send, receive:
        finished = False
        while not finished:
            mark = time.perf_counter()
            try:
                batch = [await receive.receive()]
            except anyio.EndOfStream:
                batch = []
                finished = True
            while not finished and len(batch) < BATCH_CHUNKS:
                try:
                    batch.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    break
                except anyio.EndOfStream:
                    finished = True
            now = time.perf_counter()
            metrics.wait_input_seconds += now - mark
            out = await run(process, batch) if batch else b""
            if finished:
                out += await run(flush)
            mark = time.perf_counter()
            metrics.busy_seconds += mark - now
            metrics.bytes_in += sum(map(len, batch))
            for piece in split(out):
                await send.send(piece)
                metrics.bytes_out += len(piece)
            metrics.wait_output_seconds += time.perf_counter() - mark
