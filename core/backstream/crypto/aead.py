"""An AEAD object of the cryptography library as a backstream ``Aead``: a tag that does not verify
is an IntegrityError naming the suite. Cipher-suite plugins wrap their cryptography class with it.
"""

from __future__ import annotations

from typing import Any

from backstream.errors import IntegrityError


class CryptographyAead:
    """``CryptographyAead(ChaCha20Poly1305(key), "chacha20-poly1305")``: encrypt and decrypt as
    cryptography does (it releases the GIL), with its InvalidTag turned into IntegrityError."""

    def __init__(self, impl: Any, suite: str) -> None:
        from cryptography.exceptions import InvalidTag

        self._impl = impl
        self._suite = suite
        self._invalid_tag = InvalidTag

    def encrypt(self, nonce: bytes, data: bytes | bytearray | memoryview, associated_data: bytes | None) -> bytes:
        out: bytes = self._impl.encrypt(nonce, data, associated_data)
        return out

    def decrypt(self, nonce: bytes, data: bytes | bytearray | memoryview, associated_data: bytes | None) -> bytes:
        try:
            out: bytes = self._impl.decrypt(nonce, data, associated_data)
        except self._invalid_tag:
            raise IntegrityError(f"{self._suite} authentication failed") from None
        return out
