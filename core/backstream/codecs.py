"""Building blocks for codec plugins: a decoder for formats made of concatenated members.

gzip members, bzip2 streams and LZ4 frames may follow one another; each is decoded and checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backstream.errors import IntegrityError


class MemberDecoder:
    """Push codec decoding one member after another with fresh decompressor objects.

    ``new_member()`` returns a library decompressor with ``decompress(data)``, ``eof`` and
    ``unused_data`` (zlib, bz2, lz4.frame all have them); ``errors`` are the exceptions it raises
    on bad data, turned into IntegrityError. An empty stream, or one ending inside a member
    (``unit``, e.g. "a member"), is truncated."""

    def __init__(
        self, *, fmt: str, unit: str, new_member: Callable[[], Any], errors: tuple[type[BaseException], ...]
    ) -> None:
        self._fmt = fmt
        self._unit = unit
        self._new_member = new_member
        self._errors = errors
        self._member: Any = None
        self._members = 0

    def update(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        data = chunk
        while data:
            if self._member is None:
                self._member = self._new_member()
                self._members += 1
            try:
                out.append(self._member.decompress(data))
            except self._errors as exc:
                raise IntegrityError(f"corrupt {self._fmt} data: {exc}") from exc
            if self._member.eof:
                data = self._member.unused_data or b""
                self._member = None
            else:
                data = b""
        return b"".join(out)

    def finish(self) -> bytes:
        if self._members == 0:
            raise IntegrityError(f"truncated {self._fmt} data: the stream is empty")
        if self._member is not None:
            raise IntegrityError(f"truncated {self._fmt} data: the stream ended inside {self._unit}")
        return b""
