"""The ``bz2`` compressor: a ``.bz2`` stream as ``bzip2`` writes it, via the standard library.

Option: ``level`` (block size 100k-900k, 1-9, default 9). Reads ``cat a.bz2 b.bz2`` as ``bzip2 -d`` does.
"""

from __future__ import annotations

import bz2
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


class _Compressor:
    def __init__(self, level: int) -> None:
        self._obj = bz2.BZ2Compressor(level)

    def update(self, chunk: bytes) -> bytes:
        return self._obj.compress(chunk)

    def finish(self) -> bytes:
        return self._obj.flush()


class Bz2Factory:
    """``.bz2`` objects that ``bzip2 -d`` (or ``bzcat``) restores."""

    name = "bz2"
    extension = ".bz2"

    def compressor(self, options: Mapping[str, str]) -> Codec:
        check_options("bz2", options, ("level",))
        return _Compressor(int_option("bz2", options, "level", 9, 1, 9))

    def decompressor(self) -> Codec:
        return MemberDecoder(
            fmt="bzip2", unit="a bzip2 stream", new_member=bz2.BZ2Decompressor, errors=(OSError, ValueError)
        )


@hookimpl
def backstream_register_compressors(register: Register[CompressorFactory]) -> None:
    register.add("bz2", Bz2Factory())
