"""The ``chacha20-poly1305`` cipher suite (header suite id 1): RFC 8439 ChaCha20-Poly1305.

Constant-time on every CPU; cryptography's implementation releases the GIL.
"""

from __future__ import annotations

from typing import Any

from backstream import Aead, IntegrityError, Register, hookimpl


class _ChaCha20Poly1305:
    def __init__(self, key: bytes) -> None:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        self._impl = ChaCha20Poly1305(key)
        self._invalid_tag = InvalidTag

    def encrypt(self, nonce: bytes, data: bytes | bytearray | memoryview, associated_data: bytes | None) -> bytes:
        return self._impl.encrypt(nonce, data, associated_data)

    def decrypt(self, nonce: bytes, data: bytes | bytearray | memoryview, associated_data: bytes | None) -> bytes:
        try:
            return self._impl.decrypt(nonce, data, associated_data)
        except self._invalid_tag:
            raise IntegrityError("chacha20-poly1305 authentication failed") from None


class ChaCha20Poly1305Suite:
    name = "chacha20-poly1305"
    suite_id = 1

    def aead(self, key: bytes) -> Aead:
        return _ChaCha20Poly1305(key)


@hookimpl
def backstream_register_ciphers(register: Register[Any]) -> None:
    register.add("chacha20-poly1305", ChaCha20Poly1305Suite())
