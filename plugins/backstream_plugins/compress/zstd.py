"""The ``zstd`` compressor: Zstandard frames as the ``zstd`` tool writes and reads them.

Options: ``level`` (1-22, default 3) and ``threads`` (0 = single-threaded, default 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backstream import Codec, ConfigError, IntegrityError, Register, hookimpl, missing_dependency


def _zstandard() -> Any:
    try:
        import zstandard
    except ImportError as exc:
        raise missing_dependency("zstandard", "zstd") from exc
    return zstandard


class _Compressor:
    def __init__(self, level: int, threads: int) -> None:
        zstandard = _zstandard()
        params = zstandard.ZstdCompressionParameters.from_level(level, threads=threads, write_checksum=True)
        self._obj = zstandard.ZstdCompressor(compression_params=params).compressobj()

    def update(self, chunk: bytes) -> bytes:
        return self._obj.compress(chunk)

    def finish(self) -> bytes:
        return self._obj.flush()


class _Decompressor:
    def __init__(self) -> None:
        self._zstandard = _zstandard()
        self._obj = self._zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)
        self._seen = False

    def update(self, chunk: bytes) -> bytes:
        self._seen = True
        try:
            return self._obj.decompress(chunk)
        except self._zstandard.ZstdError as exc:
            raise IntegrityError(f"corrupt zstd data: {exc}") from exc

    def finish(self) -> bytes:
        if self._seen and not self._obj.eof:
            raise IntegrityError("truncated zstd data: the stream ended inside a frame")
        return b""


class ZstdFactory:
    name = "zstd"
    extension = ".zst"

    def compressor(self, options: Mapping[str, str]) -> Codec:
        level = _int_option(options, "level", 3, 1, 22)
        threads = _int_option(options, "threads", 0, 0, 64)
        return _Compressor(level, threads)

    def decompressor(self) -> Codec:
        return _Decompressor()


def _int_option(options: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"zstd {key} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"zstd {key} must be between {low} and {high}, not {value}")
    return value


@hookimpl
def backstream_register_compressors(register: Register[Any]) -> None:
    register.add("zstd", ZstdFactory(), requires=("zstandard",), extra="zstd")
