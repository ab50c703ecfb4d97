"""The ``lz4`` compressor: LZ4 frames (content checksum on) as the ``lz4`` tool writes and reads them.

Option: ``level`` (0-16, default 0; 3 and up use LZ4-HC). Needs the ``lz4`` extra, imported lazily.
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


def _lz4_frame() -> Any:
    try:
        import lz4.frame
    except ImportError as exc:
        raise missing_dependency("lz4", "lz4") from exc
    return lz4.frame


class _Compressor:
    def __init__(self, level: int) -> None:
        frame = _lz4_frame()
        self._obj = frame.LZ4FrameCompressor(
            block_size=frame.BLOCKSIZE_MAX64KB,
            compression_level=level,
            content_checksum=True,
            auto_flush=False,
        )
        self._header: bytes = self._obj.begin()

    def update(self, chunk: bytes) -> bytes:
        out: bytes = self._header + self._obj.compress(chunk)
        self._header = b""
        return out

    def finish(self) -> bytes:
        out: bytes = self._header + self._obj.flush()
        self._header = b""
        return out


class _Decompressor:
    """Decodes one LZ4 frame after another (skippable frames included); checksums are verified."""

    def __init__(self) -> None:
        self._frame_module = _lz4_frame()
        self._frame: Any = None
        self._frames = 0

    def update(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        data = chunk
        while data:
            if self._frame is None:
                self._frame = self._frame_module.LZ4FrameDecompressor()
                self._frames += 1
            try:
                out.append(self._frame.decompress(data))
            except RuntimeError as exc:  # lz4.frame reports every LZ4F error as RuntimeError
                raise IntegrityError(f"corrupt lz4 data: {exc}") from exc
            if self._frame.eof:
                data = self._frame.unused_data or b""
                self._frame = None
            else:
                data = b""
        return b"".join(out)

    def finish(self) -> bytes:
        if self._frames == 0:
            raise IntegrityError("truncated lz4 data: the stream is empty")
        if self._frame is not None:
            raise IntegrityError("truncated lz4 data: the stream ended inside a frame")
        return b""


class Lz4Factory:
    """``.lz4`` objects (frame format) that ``lz4 -d`` restores."""

    name = "lz4"
    extension = ".lz4"

    def compressor(self, options: Mapping[str, str]) -> Codec:
        check_options("lz4", options, ("level",))
        return _Compressor(int_option("lz4", options, "level", 0, 0, 16))

    def decompressor(self) -> Codec:
        return _Decompressor()


@hookimpl
def backstream_register_compressors(register: Register[CompressorFactory]) -> None:
    register.add("lz4", Lz4Factory(), requires=("lz4",), extra="lz4")
