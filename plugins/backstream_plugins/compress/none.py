"""The ``none`` compressor: bytes pass through unchanged, for data that is already compressed.

It takes no options; its codecs set ``threaded = False`` because a worker thread would only add cost.
"""

from __future__ import annotations

from collections.abc import Mapping

from backstream import Codec, CompressorFactory, ConfigError, Register, hookimpl


class _Passthrough:
    """Returns every chunk as it is; nothing is buffered."""

    threaded = False
    """A hint for whoever builds the pipeline: keep this codec on the event loop."""

    def update(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""


class NoneFactory:
    """Stores the data as it is: the object is the plain stream, with no extension."""

    name = "none"
    extension = ""

    def compressor(self, options: Mapping[str, str]) -> Codec:
        if options:
            raise ConfigError(f"compressor 'none' takes no options (got: {', '.join(sorted(options))})")
        return _Passthrough()

    def decompressor(self) -> Codec:
        return _Passthrough()


@hookimpl
def backstream_register_compressors(register: Register[CompressorFactory]) -> None:
    register.add("none", NoneFactory())
