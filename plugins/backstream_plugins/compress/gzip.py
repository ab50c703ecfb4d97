"""The ``gzip`` compressor: a real ``.gz`` file (header, deflate data, CRC-32 trailer) via zlib.

Option: ``level`` (1-9, default 6). Reads what ``gzip`` writes, including ``cat a.gz b.gz``.
"""

from __future__ import annotations

import zlib
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

GZIP_WBITS = 16 + zlib.MAX_WBITS
"""zlib's window setting for the gzip container (31): header and CRC-32/ISIZE trailer."""


class _Compressor:
    def __init__(self, level: int) -> None:
        self._obj = zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)

    def update(self, chunk: bytes) -> bytes:
        return self._obj.compress(chunk)

    def finish(self) -> bytes:
        return self._obj.flush(zlib.Z_FINISH)


class _Decompressor:
    """Decodes one gzip member after another; each member's CRC-32 and length are checked."""

    def __init__(self) -> None:
        self._member: zlib._Decompress | None = None
        self._members = 0

    def update(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        data = chunk
        while data:
            if self._member is None:
                self._member = zlib.decompressobj(GZIP_WBITS)
                self._members += 1
            try:
                out.append(self._member.decompress(data))
            except zlib.error as exc:
                raise IntegrityError(f"corrupt gzip data: {exc}") from exc
            if self._member.eof:
                data = self._member.unused_data
                self._member = None
            else:
                data = b""
        return b"".join(out)

    def finish(self) -> bytes:
        if self._members == 0:
            raise IntegrityError("truncated gzip data: the stream is empty")
        if self._member is not None:
            raise IntegrityError("truncated gzip data: the stream ended inside a member")
        return b""


class GzipFactory:
    """``.gz`` objects that ``gzip -d`` (or ``zcat``) restores."""

    name = "gzip"
    extension = ".gz"

    def compressor(self, options: Mapping[str, str]) -> Codec:
        check_options("gzip", options, ("level",))
        return _Compressor(int_option("gzip", options, "level", 6, 1, 9))

    def decompressor(self) -> Codec:
        return _Decompressor()


@hookimpl
def backstream_register_compressors(register: Register[CompressorFactory]) -> None:
    register.add("gzip", GzipFactory())
