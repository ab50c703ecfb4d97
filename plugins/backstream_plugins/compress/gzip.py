"""The ``gzip`` compressor: a real ``.gz`` file (header, deflate data, CRC-32 trailer) via zlib.

Option: ``level`` (1-9, default 6). Reads what ``gzip`` writes, including ``cat a.gz b.gz``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from backstream import (
    Codec,
    CompressorFactory,
    MemberDecoder,
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


class GzipFactory:
    """``.gz`` objects that ``gzip -d`` (or ``zcat``) restores."""

    name = "gzip"
    extension = ".gz"

    def compressor(self, options: Mapping[str, str]) -> Codec:
        check_options("gzip", options, ("level",))
        return _Compressor(int_option("gzip", options, "level", 6, 1, 9))

    def decompressor(self) -> Codec:
        return MemberDecoder(
            fmt="gzip", unit="a member", new_member=lambda: zlib.decompressobj(GZIP_WBITS), errors=(zlib.error,)
        )


@hookimpl
def backstream_register_compressors(register: Register[CompressorFactory]) -> None:
    register.add("gzip", GzipFactory())
