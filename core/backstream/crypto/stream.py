"""The STREAM payload of an encrypted object: key derivation and the chunked AEAD push codecs.

Plaintext is cut into 64 KiB chunks; chunk i is sealed under nonce = i (11 bytes, big-endian) || last-flag.
"""

from __future__ import annotations

import hashlib
from typing import NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from backstream.crypto.header import CHUNK_SIZE
from backstream.errors import IntegrityError
from backstream.protocols import Aead

TAG_SIZE = 16
SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
"""Bytes of a full chunk on the wire: 64 KiB of ciphertext and the 16-byte tag."""

HEADER_MAC_LABEL = b"backstream/v1 header-mac"
PAYLOAD_LABEL = b"backstream/v1 payload"
MAX_COUNTER = (1 << 88) - 1

_NOT_LAST = b"\x00"
_LAST = b"\x01"


def header_mac_key(data_key: bytes, salt: bytes) -> bytes:
    """HKDF-SHA256(ikm=data key, salt=stream salt, info="backstream/v1 header-mac"), 32 bytes."""
    return _hkdf(data_key, salt, HEADER_MAC_LABEL)


def payload_key(data_key: bytes, salt: bytes, preamble: bytes) -> bytes:
    """HKDF-SHA256(ikm=data key, salt=stream salt, info="backstream/v1 payload" || SHA-256(preamble))."""
    return _hkdf(data_key, salt, PAYLOAD_LABEL + hashlib.sha256(preamble).digest())


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def chunk_nonce(counter: int, *, last: bool) -> bytes:
    """The 12-byte nonce of chunk ``counter``."""
    if counter > MAX_COUNTER:
        raise IntegrityError("too many chunks for one object (the 88-bit chunk counter would wrap)")
    return counter.to_bytes(11, "big") + (_LAST if last else _NOT_LAST)


class StreamEncryptor:
    """Push codec: plaintext in any chunking -> sealed 64 KiB chunks, ``prefix`` (the header) first.

    The last chunk is held back until ``finish()``, because only then is it known to be last;
    an empty payload becomes one empty final chunk (16 bytes)."""

    def __init__(self, aead: Aead, *, prefix: bytes = b"") -> None:
        self._aead = aead
        self._prefix = prefix
        self._counter = 0
        self._held: bytes | None = None
        self._buffer = bytearray()
        self._finished = False

    def update(self, chunk: bytes) -> bytes:
        if self._finished:
            raise RuntimeError("update() after finish()")
        out = self._take_prefix()
        if not chunk:
            return out
        if not self._buffer and len(chunk) == CHUNK_SIZE:
            # Aligned input (the pipeline's usual case): no copy, seal the held chunk.
            held, self._held = self._held, bytes(chunk)
            if held is None:
                return out
            sealed = self._seal(held, last=False)
            return out + sealed if out else sealed
        if self._held is not None:
            self._buffer += self._held
            self._held = None
        self._buffer += chunk
        if len(self._buffer) <= CHUNK_SIZE:
            return out
        count = (len(self._buffer) - 1) // CHUNK_SIZE  # always keep >= 1 byte back
        pieces = [out] if out else []
        with memoryview(self._buffer) as view:
            for index in range(count):
                pieces.append(self._seal(view[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE], last=False))
        del self._buffer[: count * CHUNK_SIZE]
        return b"".join(pieces)

    def finish(self) -> bytes:
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        out = self._take_prefix()
        last: bytes | bytearray = self._held if self._held is not None else self._buffer
        sealed = self._seal(last, last=True)
        self._held = None
        self._buffer = bytearray()
        return out + sealed

    def _take_prefix(self) -> bytes:
        prefix, self._prefix = self._prefix, b""
        return prefix

    def _seal(self, data: bytes | bytearray | memoryview, *, last: bool) -> bytes:
        sealed = self._aead.encrypt(chunk_nonce(self._counter, last=last), data, None)
        self._counter += 1
        return sealed


class StreamDecryptor:
    """Push codec: sealed chunks in any chunking -> plaintext, released one authenticated chunk at a time.

    Raises IntegrityError at the first chunk that does not authenticate (and for every later call):
    tampering, reordering, dropping, truncation, an empty final chunk, or bytes after the final chunk.
    Plaintext of a chunk is released only after its tag verified; the last sealed chunk is held
    back until ``finish()`` proves nothing follows it."""

    def __init__(self, aead: Aead) -> None:
        self._aead = aead
        self._counter = 0
        self._buffer = bytearray()
        self._failed: IntegrityError | None = None
        self._finished = False

    def update(self, chunk: bytes) -> bytes:
        self._check_usable()
        self._buffer += chunk
        if len(self._buffer) <= SEALED_CHUNK_SIZE:
            return b""
        count = (len(self._buffer) - 1) // SEALED_CHUNK_SIZE  # a full chunk with more after it: not last
        pieces = []
        with memoryview(self._buffer) as view:
            for index in range(count):
                with view[index * SEALED_CHUNK_SIZE : (index + 1) * SEALED_CHUNK_SIZE] as sealed:
                    pieces.append(self._open(sealed, last=False))
        del self._buffer[: count * SEALED_CHUNK_SIZE]
        return b"".join(pieces)

    def finish(self) -> bytes:
        self._check_usable()
        self._finished = True
        remaining = bytes(self._buffer)
        self._buffer = bytearray()
        if len(remaining) < TAG_SIZE:
            if not remaining and self._counter == 0:
                self._fail("truncated object: no payload after the header")
            if not remaining:
                self._fail(f"truncated object: the input ends after chunk {self._counter - 1}, before the final chunk")
            self._fail(f"truncated object: the input ends inside chunk {self._counter}")
        plaintext = self._open(remaining, last=True)
        if not plaintext and self._counter > 1:
            self._fail("corrupt object: an empty final chunk is only allowed when the whole payload is empty")
        return plaintext

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise IntegrityError(str(self._failed))
        if self._finished:
            raise RuntimeError("the decryptor is finished")

    def _open(self, sealed: bytes | memoryview, *, last: bool) -> bytes:
        index = self._counter
        try:
            plaintext = self._aead.decrypt(chunk_nonce(index, last=last), sealed, None)
        except IntegrityError:
            plaintext = None
        if plaintext is None:
            self._fail(self._diagnose(sealed, index, last=last))
        self._counter += 1
        return plaintext

    def _diagnose(self, sealed: bytes | memoryview, index: int, *, last: bool) -> str:
        """Explain a failed chunk: does it open with the other last-flag? (Only on the error path.)"""
        try:
            self._aead.decrypt(chunk_nonce(index, last=not last), sealed, None)
        except IntegrityError:
            return (
                f"chunk {index} failed authentication: the object was modified, chunks were reordered or "
                "dropped, or the header belongs to another object"
            )
        if last:
            return f"truncated object: the input ends after chunk {index}, before the final chunk"
        return f"corrupt object: unexpected bytes after the final chunk (chunk {index})"

    def _fail(self, message: str) -> NoReturn:
        self._failed = IntegrityError(message)
        raise IntegrityError(message)
