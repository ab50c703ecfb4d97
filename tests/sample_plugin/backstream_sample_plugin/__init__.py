"""A sample third-party plugin: registers the ``sample-reverse`` compressor through the entry point.

It imports only the public ``backstream`` API, exactly as an external package would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backstream import Codec, Register, hookimpl


class _Reverse:
    """Reverses every byte's bits: useless as compression, trivial to check in tests."""

    def update(self, chunk: bytes) -> bytes:
        return chunk.translate(_TABLE)

    def finish(self) -> bytes:
        return b""


_TABLE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


class SampleReverseFactory:
    name = "sample-reverse"
    extension = ".rev"

    def compressor(self, options: Mapping[str, str]) -> Codec:
        return _Reverse()

    def decompressor(self) -> Codec:
        return _Reverse()


@hookimpl
def backstream_register_compressors(register: Register[Any]) -> None:
    register.add("sample-reverse", SampleReverseFactory())
