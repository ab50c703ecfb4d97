"""The ``gzip`` compressor: a real ``.gz`` file (header, deflate data, CRC-32 trailer) via zlib.

Option: ``level`` (1-9, default 6). Reads what ``gzip`` writes, including ``cat a.gz b.gz``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from backstream import Codec, CompressorFactory, ConfigError, IntegrityError, Register, hookimpl

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
        _check_known(options, ("level",))
        return _Compressor(_int_option(options, "level", 6, 1, 9))

    def decompressor(self) -> Codec:
        return _Decompressor()


def _check_known(options: Mapping[str, str], known: tuple[str, ...]) -> None:
    for key in options:
        if key not in known:
            raise ConfigError(f"gzip has no option {key!r} (options: {', '.join(known)})")


def _int_option(options: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw: object = options.get(key)
    if raw is None:
        return default
    try:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError
        value = int(raw)
    except ValueError:
        raise ConfigError(f"gzip {key} must be an integer from {low} to {high}, not {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"gzip {key} must be an integer from {low} to {high}, not {value}")
    return value


@hookimpl
def backstream_register_compressors(register: Register[CompressorFactory]) -> None:
    register.add("gzip", GzipFactory())
