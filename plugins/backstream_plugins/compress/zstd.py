"""The ``zstd`` compressor: Zstandard frames (with checksum) as the ``zstd`` tool writes and reads them.

Options: ``level`` (1-22, default 3) and ``threads`` (0 = single-threaded, default 0). Needs the ``zstd`` extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backstream import (
    Codec,
    CompressorFactory,
    IntegrityError,
    Register,
    check_options,
    hookimpl,
    int_option,
    missing_dependency,
)


def _zstandard() -> Any:
    try:
        import zstandard
    except ImportError as exc:
        raise missing_dependency("zstandard", "zstd") from exc
    return zstandard


class _Compressor:
    def __init__(self, level: int, threads: int) -> None:
        zstandard = _zstandard()
        params = zstandard.ZstdCompressionParameters.from_level(level, threads=threads, write_checksum=True)
        self._obj = zstandard.ZstdCompressor(compression_params=params).compressobj()

    def update(self, chunk: bytes) -> bytes:
        out: bytes = self._obj.compress(chunk)
        return out

    def finish(self) -> bytes:
        out: bytes = self._obj.flush()
        return out


class _Decompressor:
    """Decodes one frame after another (skippable frames included); checksums are verified.

    Each frame gets its own single-frame decompressobj: with ``read_across_frames=True`` zstandard
    never reports ``eof``, so a stream cut off inside a frame could not be told from a whole one.
    """

    def __init__(self) -> None:
        self._zstandard = _zstandard()
        self._context = self._zstandard.ZstdDecompressor()
        self._frame: Any = None
        self._frames = 0

    def update(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        data = chunk
        while data:
            if self._frame is None:
                self._frame = self._context.decompressobj()
                self._frames += 1
            try:
                out.append(self._frame.decompress(data))
            except self._zstandard.ZstdError as exc:
                raise IntegrityError(f"corrupt zstd data: {exc}") from exc
            if self._frame.eof:
                data = self._frame.unused_data
                self._frame = None
            else:
                data = b""
        return b"".join(out)

    def finish(self) -> bytes:
        if self._frames == 0:
            raise IntegrityError("truncated zstd data: the stream is empty")
        if self._frame is not None:
            raise IntegrityError("truncated zstd data: the stream ended inside a frame")
        return b""


class ZstdFactory:
    """``.zst`` objects that ``zstd -d`` (or ``zstdcat``) restores."""

    name = "zstd"
    extension = ".zst"

    def compressor(self, options: Mapping[str, str]) -> Codec:
        check_options("zstd", options, ("level", "threads"))
        level = int_option("zstd", options, "level", 3, 1, 22)
        threads = int_option("zstd", options, "threads", 0, 0, 64)
        return _Compressor(level, threads)

    def decompressor(self) -> Codec:
        return _Decompressor()


@hookimpl
def backstream_register_compressors(register: Register[CompressorFactory]) -> None:
    register.add("zstd", ZstdFactory(), requires=("zstandard",), extra="zstd")
