"""The ``xz`` compressor: an ``.xz`` stream (CRC-64 check, as ``xz`` writes) via the standard library.

Option: ``level`` (preset 0-9, default 6). Reads concatenated streams and stream padding like ``xz -d``.
"""

from __future__ import annotations

import lzma
from collections.abc import Mapping

from backstream import (
    Codec,
    CompressorFactory,
    IntegrityError,
    Register,
    check_options,
    hookimpl,
    int_option,
)


class _Compressor:
    def __init__(self, preset: int) -> None:
        self._obj = lzma.LZMACompressor(format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=preset)

    def update(self, chunk: bytes) -> bytes:
        return self._obj.compress(chunk)

    def finish(self) -> bytes:
        return self._obj.flush()


class _Decompressor:
    """Decodes one .xz stream after another, skipping stream padding (null bytes, a multiple of 4)
    between and after streams, as the .xz format allows; every check is verified."""

    def __init__(self) -> None:
        self._stream: lzma.LZMADecompressor | None = None
        self._streams = 0
        self._padding = 0

    def update(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        data = chunk
        while data:
            if self._stream is None:
                stripped = data.lstrip(b"\0")
                self._padding += len(data) - len(stripped)
                data = stripped
                if not data:
                    break
                self._check_padding()
                self._stream = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
                self._streams += 1
            try:
                out.append(self._stream.decompress(data))
            except lzma.LZMAError as exc:
                raise IntegrityError(f"corrupt xz data: {exc}") from exc
            if self._stream.eof:
                data = self._stream.unused_data
                self._stream = None
            else:
                data = b""
        return b"".join(out)

    def finish(self) -> bytes:
        if self._streams == 0:
            raise IntegrityError("truncated xz data: the stream is empty")
        if self._stream is not None:
            raise IntegrityError("truncated xz data: the stream ended inside an xz stream")
        self._check_padding()
        return b""

    def _check_padding(self) -> None:
        if self._padding % 4:
            raise IntegrityError("corrupt xz data: stream padding is not a multiple of four bytes")
        if self._padding and self._streams == 0:
            raise IntegrityError("corrupt xz data: stream padding before the first stream")
        self._padding = 0


class XzFactory:
    """``.xz`` objects that ``xz -d`` (or ``xzcat``) restores."""

    name = "xz"
    extension = ".xz"

    def compressor(self, options: Mapping[str, str]) -> Codec:
        check_options("xz", options, ("level",))
        return _Compressor(int_option("xz", options, "level", 6, 0, 9))

    def decompressor(self) -> Codec:
        return _Decompressor()


@hookimpl
def backstream_register_compressors(register: Register[CompressorFactory]) -> None:
    register.add("xz", XzFactory())
