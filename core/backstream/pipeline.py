"""The streaming pipeline: source -> transforms -> sink, linked by small bounded channels.

Each threaded transform runs its codec in a long-lived worker thread of its own (codecs release
the GIL), so stages overlap on different cores; errors or cancellation stop every stage and the
sink commits nothing.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from backstream.chunks import CHUNK_SIZE, split
from backstream.errors import primary_error
from backstream.protocols import BlockingChunks, ByteSink, ByteSource, ByteWriter, Codec

BATCH_BYTES = 256 * 1024
"""Stages pass batches: lists of chunks (each non-empty, at most CHUNK_SIZE) of about this many
bytes in all. A batch is the unit of hand-off between stages, so the cost of a hand-off (a lock,
sometimes a wake-up of the event loop) is paid once per 256 KiB, not once per 64 KiB chunk.
Measured on a 268 MB PostgreSQL backup: 1 MiB, 512 KiB and 256 KiB take the same time within
1-2%, and each halving holds ~2-4 MiB less at the peak (benchmarks/README.md)."""

LINK_BATCHES = 2
"""Batches buffered between two stages (memory per link <= about LINK_BATCHES * BATCH_BYTES)."""

LINK_CHUNKS = 32
"""Chunks buffered by chunk-at-a-time links elsewhere (the restore job's data feed)."""

Batch = list[bytes]


@dataclass(frozen=True)
class Transform:
    """A named codec placed in the pipeline. ``threaded=False`` keeps a trivial codec on the loop."""

    name: str
    codec: Codec
    threaded: bool = True


@dataclass(frozen=True)
class LateTransform:
    """A transform whose codec is made while the stream starts: ``make`` is awaited concurrently
    with opening the source and running the stages before it, whose output waits in the bounded
    link until the codec is ready. For an encryptor that waits for a passphrase's KDF (~0.1-0.2 s):
    the dump tool starts meanwhile instead of after it. If ``make`` fails, the run fails."""

    name: str
    make: Callable[[], Awaitable[Codec]]


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


class _Aborted(Exception):
    """Raised inside a worker thread when another stage failed; never leaves this module."""


class _Channel:
    """A bounded FIFO of batches between two stages, each a worker thread or the event loop.

    Threads block on a condition variable; the event loop awaits an ``anyio.Event`` that the other
    side sets through ``call_soon`` (non-blocking, so a codec thread never waits for the loop).
    ``abort()`` wakes everyone: threads raise ``_Aborted``, loop tasks wait to be cancelled.
    """

    def __init__(self, capacity: int, call_soon: Callable[[Callable[[], object]], object]) -> None:
        self._items: deque[Batch] = deque()
        self._capacity = capacity
        self._call_soon = call_soon
        self._changed = threading.Condition(threading.Lock())
        self._closed = False
        self._aborted = False
        self._loop_waiter: anyio.Event | None = None
        self._loop_thread = threading.get_ident()

    # --- either side -------------------------------------------------------------------------

    @property
    def aborted(self) -> bool:
        return self._aborted

    def abort(self) -> None:
        """Stop both ends for good (another stage failed or the run was cancelled)."""
        with self._changed:
            self._aborted = True
            waiter = self._notify_locked()
        self._wake(waiter)

    def close(self) -> None:
        """End of stream: the consumer gets what is queued, then ``None``."""
        with self._changed:
            self._closed = True
            waiter = self._notify_locked()
        self._wake(waiter)

    # --- worker-thread side ------------------------------------------------------------------

    def put(self, batch: Batch) -> None:
        with self._changed:
            while len(self._items) >= self._capacity and not self._aborted:
                self._changed.wait()
            if self._aborted:
                raise _Aborted
            self._items.append(batch)
            waiter = self._notify_locked()
        self._wake(waiter)

    def get(self) -> Batch | None:
        with self._changed:
            while not self._items and not self._closed and not self._aborted:
                self._changed.wait()
            if self._aborted:
                raise _Aborted
            if not self._items:
                return None
            batch = self._items.popleft()
            waiter = self._notify_locked()
        self._wake(waiter)
        return batch

    # --- event-loop side ---------------------------------------------------------------------

    async def send(self, batch: Batch) -> None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        while True:
            with self._changed:
                if not self._aborted and len(self._items) < self._capacity:
                    self._items.append(batch)
                    waiter = self._notify_locked()
                    break
                event = self._loop_waiter = anyio.Event() if not self._aborted else None
            await self._wait(event)
        self._wake(waiter)

    async def receive(self) -> Batch | None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        while True:
            with self._changed:
                if not self._aborted and (self._items or self._closed):
                    batch = self._items.popleft() if self._items else None
                    waiter = self._notify_locked()
                    break
                event = self._loop_waiter = anyio.Event() if not self._aborted else None
            await self._wait(event)
        self._wake(waiter)
        return batch

    @staticmethod
    async def _wait(event: anyio.Event | None) -> None:
        if event is None:
            # Aborted: the stage that aborted is failing (or the run is being cancelled), so the
            # task group cancels this task soon. Waiting for that, rather than raising, keeps the
            # real error -- or a caller's cancellation -- the one that propagates.
            await anyio.sleep_forever()
        else:
            await event.wait()

    def _notify_locked(self) -> anyio.Event | None:
        """After a change, under the lock: wake waiting threads, and take the loop's waiter (to
        be woken with ``_wake`` once the lock is released)."""
        self._changed.notify_all()
        waiter, self._loop_waiter = self._loop_waiter, None
        return waiter

    def _wake(self, event: anyio.Event | None) -> None:
        if event is None:
            return
        if threading.get_ident() == self._loop_thread:
            event.set()
        else:
            self._call_soon(event.set)


def _loop_call_soon() -> Callable[[Callable[[], object]], object]:
    """Schedule a callback on the running event loop from any thread, without blocking."""
    native: Any = anyio.lowlevel.current_token().native_token
    if hasattr(native, "call_soon_threadsafe"):  # an asyncio event loop
        return native.call_soon_threadsafe  # type: ignore[no-any-return]
    return native.run_sync_soon  # type: ignore[no-any-return]  # trio's TrioToken


class Pipeline:
    """Run ``source -> transforms -> sink`` once with ``await pipeline.run()``."""

    def __init__(self, source: ByteSource, transforms: Sequence[Transform | LateTransform], sink: ByteSink) -> None:
        self._source = source
        self._transforms = tuple(transforms)
        self._sink = sink

    async def run(self) -> PipelineResult:
        """Stream everything through; commit the sink only if every stage finished cleanly."""
        source_metrics = StageMetrics("source")
        transform_metrics = [StageMetrics(t.name) for t in self._transforms]
        sink_metrics = StageMetrics("sink")
        digest = hashlib.sha256()
        call_soon = _loop_call_soon()
        channels = [_Channel(LINK_BATCHES, call_soon) for _ in range(len(self._transforms) + 1)]
        threads = anyio.CapacityLimiter(max(1, sum(_threaded(t) for t in self._transforms)))
        started = time.perf_counter()
        try:
            async with self._sink as writer:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_run_source, self._source, channels, source_metrics)
                    for index, transform in enumerate(self._transforms):
                        last = index == len(self._transforms) - 1
                        observe = digest.update if last else None
                        if isinstance(transform, LateTransform):
                            tg.start_soon(_late, transform, channels, index, transform_metrics[index], observe, threads)
                            continue
                        stage = _TransformStage(transform.codec, channels, index, transform_metrics[index], observe)
                        if transform.threaded:
                            tg.start_soon(_in_thread, stage, threads)
                        else:
                            tg.start_soon(stage.run_on_loop)
                    await _run_sink(writer, channels, sink_metrics, None if self._transforms else digest.update)
        except BaseExceptionGroup as group:
            raise primary_error(group) from None
        return PipelineResult(
            bytes_in=source_metrics.bytes_out,
            bytes_out=sink_metrics.bytes_out,
            sha256=digest.hexdigest(),
            elapsed_seconds=time.perf_counter() - started,
            stages=(source_metrics, *transform_metrics, sink_metrics),
        )


def _threaded(transform: Transform | LateTransform) -> bool:
    return isinstance(transform, LateTransform) or transform.threaded


async def _late(
    transform: LateTransform,
    channels: Sequence[_Channel],
    index: int,
    metrics: StageMetrics,
    observe: Callable[[bytes], object] | None,
    limiter: anyio.CapacityLimiter,
) -> None:
    """Make a ``LateTransform``'s codec, then run it in its worker thread like any other."""
    try:
        codec = await transform.make()
    except BaseException:
        _abort_all(channels)
        raise
    await _in_thread(_TransformStage(codec, channels, index, metrics, observe), limiter)


def _abort_all(channels: Sequence[_Channel]) -> None:
    for channel in channels:
        channel.abort()


async def _run_source(source: ByteSource, channels: Sequence[_Channel], metrics: StageMetrics) -> None:
    out = channels[0]
    try:
        async with source as chunks:
            if isinstance(chunks, BlockingChunks):
                reader = _BlockingReader(chunks, out, metrics)
                await anyio.to_thread.run_sync(reader.run, limiter=anyio.CapacityLimiter(1))
                if reader.aborted:
                    await anyio.sleep_forever()  # another stage failed: wait to be cancelled
                batch, size = reader.batch, reader.size
            else:
                batch, size = await _read_async(chunks, out, metrics)
            # The source context must exit cleanly (a dump tool's exit status is checked there)
            # before downstream may see the last batch and end-of-stream.
        if batch:
            await out.send(batch)
            metrics.bytes_out += size
        out.close()
    except BaseException:
        _abort_all(channels)
        raise


async def _read_async(chunks: AsyncIterator[bytes], out: _Channel, metrics: StageMetrics) -> tuple[Batch, int]:
    """Batch an async chunk iterator into ``out``; return the last, partial batch and its size."""
    batch: Batch = []
    size = 0
    mark = time.perf_counter()
    async for chunk in chunks:
        now = time.perf_counter()
        metrics.busy_seconds += now - mark
        metrics.bytes_in += len(chunk)
        batch.extend(split(chunk))
        size += len(chunk)
        if size >= BATCH_BYTES:
            await out.send(batch)
            metrics.bytes_out += size
            batch, size = [], 0
        mark = time.perf_counter()
        metrics.wait_output_seconds += mark - now
    return batch, size


class _BlockingReader:
    """Reads a ``BlockingChunks`` stream in a worker thread straight into the first channel."""

    POLL_SECONDS = 0.1
    """How long one read may wait before the reader checks whether the run was aborted."""

    def __init__(self, chunks: BlockingChunks, out: _Channel, metrics: StageMetrics) -> None:
        self._chunks = chunks
        self._out = out
        self._metrics = metrics
        self.batch: Batch = []
        self.size = 0
        self.aborted = False

    def run(self) -> None:
        metrics = self._metrics
        mark = time.perf_counter()
        try:
            while True:
                if self._out.aborted:  # checked at every read: a trickling source must not delay an abort
                    raise _Aborted
                chunk = self._chunks.read_blocking(self.POLL_SECONDS)
                now = time.perf_counter()
                metrics.busy_seconds += now - mark
                if chunk is None:
                    mark = now
                    continue
                if not chunk:
                    return
                metrics.bytes_in += len(chunk)
                self.batch.extend(split(chunk))
                self.size += len(chunk)
                if self.size >= BATCH_BYTES:
                    self._out.put(self.batch)
                    metrics.bytes_out += self.size
                    self.batch, self.size = [], 0
                mark = time.perf_counter()
                metrics.wait_output_seconds += mark - now
        except _Aborted:
            self.aborted = True


async def _run_sink(
    writer: ByteWriter, channels: Sequence[_Channel], metrics: StageMetrics, observe: Callable[[bytes], object] | None
) -> None:
    inbox = channels[-1]
    try:
        while True:
            mark = time.perf_counter()
            batch = await inbox.receive()
            now = time.perf_counter()
            metrics.wait_input_seconds += now - mark
            if batch is None:
                return
            for chunk in batch:
                if observe is not None:
                    observe(chunk)
                await writer.write(chunk)
            size = sum(map(len, batch))
            metrics.busy_seconds += time.perf_counter() - now
            metrics.bytes_in += size
            metrics.bytes_out += size
    except BaseException:
        _abort_all(channels)
        raise


class _TransformStage:
    """One codec between two channels, run either in its own worker thread or on the loop."""

    def __init__(
        self,
        codec: Codec,
        channels: Sequence[_Channel],
        index: int,
        metrics: StageMetrics,
        observe: Callable[[bytes], object] | None,
    ) -> None:
        self._codec = codec
        self._channels = channels
        self._inbox = channels[index]
        self._outbox = channels[index + 1]
        self._metrics = metrics
        self._observe = observe

    def process(self, batch: Batch, final: bool) -> Batch:
        codec = self._codec
        pieces = [codec.update(chunk) for chunk in batch]
        if final:
            pieces.append(codec.finish())
        out = _recut(pieces)
        if self._observe is not None:
            for chunk in out:
                self._observe(chunk)
        self._metrics.bytes_in += sum(map(len, batch))
        self._metrics.bytes_out += sum(map(len, out))
        return out

    def run_in_thread(self) -> None:
        """The worker thread's loop: take a batch, code it, pass it on, until end of stream."""
        metrics = self._metrics
        try:
            while True:
                mark = time.perf_counter()
                batch = self._inbox.get()
                now = time.perf_counter()
                metrics.wait_input_seconds += now - mark
                out = self.process(batch or [], batch is None)
                mark = time.perf_counter()
                metrics.busy_seconds += mark - now
                if out:
                    self._outbox.put(out)
                    metrics.wait_output_seconds += time.perf_counter() - mark
                if batch is None:
                    self._outbox.close()
                    return
        except _Aborted:
            return
        except BaseException:
            _abort_all(self._channels)
            raise

    async def run_on_loop(self) -> None:
        metrics = self._metrics
        try:
            while True:
                mark = time.perf_counter()
                batch = await self._inbox.receive()
                now = time.perf_counter()
                metrics.wait_input_seconds += now - mark
                out = self.process(batch or [], batch is None)
                mark = time.perf_counter()
                metrics.busy_seconds += mark - now
                if out:
                    await self._outbox.send(out)
                    metrics.wait_output_seconds += time.perf_counter() - mark
                if batch is None:
                    self._outbox.close()
                    return
        except BaseException:
            _abort_all(self._channels)
            raise


def _recut(pieces: list[bytes]) -> Batch:
    """A codec's outputs as a batch: kept as they are when each fits in a chunk (no copy for a
    pass-through stage), else joined and cut again (a cipher's 64 KiB + tag pieces)."""
    kept = [piece for piece in pieces if piece]
    if all(len(piece) <= CHUNK_SIZE for piece in kept):
        return kept
    return list(split(b"".join(kept)))


async def _in_thread(stage: _TransformStage, limiter: anyio.CapacityLimiter) -> None:
    # Not abandoned on cancel: the task waits for its thread, which a cancelled run's abort()
    # wakes, so no codec is still running when the sink discards its output.
    await anyio.to_thread.run_sync(stage.run_in_thread, limiter=limiter)
