"""The ``bz2`` compressor: a ``.bz2`` stream as ``bzip2`` writes it, via the standard library.

Option: ``level`` (block size 100k-900k, 1-9, default 9). Reads ``cat a.bz2 b.bz2`` as ``bzip2 -d`` does.
"""

from __future__ import annotations

import bz2
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
    def __init__(self, level: int) -> None:
        self._obj = bz2.BZ2Compressor(level)

    def update(self, chunk: bytes) -> bytes:
        return self._obj.compress(chunk)

    def finish(self) -> bytes:
        return self._obj.flush()


class _Decompressor:
    """Decodes one bzip2 stream after another; every block's CRC and the stream CRC are checked."""

    def __init__(self) -> None:
        self._stream: bz2.BZ2Decompressor | None = None
        self._streams = 0

    def update(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        data = chunk
        while data:
            if self._stream is None:
                self._stream = bz2.BZ2Decompressor()
                self._streams += 1
            try:
                out.append(self._stream.decompress(data))
            except (OSError, ValueError) as exc:
                raise IntegrityError(f"corrupt bzip2 data: {exc}") from exc
            if self._stream.eof:
                data = self._stream.unused_data
                self._stream = None
            else:
                data = b""
        return b"".join(out)

    def finish(self) -> bytes:
        if self._streams == 0:
            raise IntegrityError("truncated bzip2 data: the stream is empty")
        if self._stream is not None:
            raise IntegrityError("truncated bzip2 data: the stream ended inside a bzip2 stream")
        return b""


class Bz2Factory:
    """``.bz2`` objects that ``bzip2 -d`` (or ``bzcat``) restores."""

    name = "bz2"
    extension = ".bz2"

    def compressor(self, options: Mapping[str, str]) -> Codec:
        check_options("bz2", options, ("level",))
        return _Compressor(int_option("bz2", options, "level", 9, 1, 9))

    def decompressor(self) -> Codec:
        return _Decompressor()


@hookimpl
def backstream_register_compressors(register: Register[CompressorFactory]) -> None:
    register.add("bz2", Bz2Factory())
