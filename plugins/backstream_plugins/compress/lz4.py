"""The ``lz4`` compressor: LZ4 frames (content checksum on) as the ``lz4`` tool writes and reads them.

Option: ``level`` (0-16, default 0; 3 and up use LZ4-HC). Needs the ``lz4`` extra, imported lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backstream import (
    Codec,
    CompressorFactory,
    MemberDecoder,
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


class Lz4Factory:
    """``.lz4`` objects (frame format) that ``lz4 -d`` restores."""

    name = "lz4"
    extension = ".lz4"

    def compressor(self, options: Mapping[str, str]) -> Codec:
        check_options("lz4", options, ("level",))
        return _Compressor(int_option("lz4", options, "level", 0, 0, 16))

    def decompressor(self) -> Codec:
        return MemberDecoder(
            fmt="lz4", unit="a frame", new_member=_lz4_frame().LZ4FrameDecompressor, errors=(RuntimeError,)
        )


@hookimpl
def backstream_register_compressors(register: Register[CompressorFactory]) -> None:
    register.add("lz4", Lz4Factory(), requires=("lz4",), extra="lz4")
