"""The ``aes-256-gcm`` cipher suite (header suite id 2): AES-256 in Galois/Counter Mode.

The fastest suite on CPUs with AES-NI/PCLMUL (or ARMv8 crypto); cryptography releases the GIL.
"""

from __future__ import annotations

from typing import Any

from backstream import Aead, IntegrityError, Register, hookimpl


class _Aes256Gcm:
    def __init__(self, key: bytes) -> None:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != 32:
            raise ValueError("aes-256-gcm needs a 32-byte key")
        self._impl = AESGCM(key)
        self._invalid_tag = InvalidTag

    def encrypt(self, nonce: bytes, data: bytes | bytearray | memoryview, associated_data: bytes | None) -> bytes:
        return self._impl.encrypt(nonce, data, associated_data)

    def decrypt(self, nonce: bytes, data: bytes | bytearray | memoryview, associated_data: bytes | None) -> bytes:
        try:
            return self._impl.decrypt(nonce, data, associated_data)
        except self._invalid_tag:
            raise IntegrityError("aes-256-gcm authentication failed") from None


class Aes256GcmSuite:
    name = "aes-256-gcm"
    suite_id = 2

    def aead(self, key: bytes) -> Aead:
        return _Aes256Gcm(key)


@hookimpl
def backstream_register_ciphers(register: Register[Any]) -> None:
    register.add("aes-256-gcm", Aes256GcmSuite())
