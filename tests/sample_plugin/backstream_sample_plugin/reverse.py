"""The ``sample-reverse`` compressor: reverses every byte's bits, useless as compression, trivial to check in tests."""

from __future__ import annotations

from collections.abc import Mapping

from backstream import Codec

_TABLE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


class _Reverse:
    def update(self, chunk: bytes) -> bytes:
        return chunk.translate(_TABLE)

    def finish(self) -> bytes:
        return b""


class SampleReverseFactory:
    name = "sample-reverse"
    extension = ".rev"

    def compressor(self, options: Mapping[str, str]) -> Codec:
        return _Reverse()

    def decompressor(self) -> Codec:
        return _Reverse()
