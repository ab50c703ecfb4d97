"""The ``aes-256-gcm`` cipher suite (header suite id 2): AES-256 in Galois/Counter Mode.

The fastest suite on CPUs with AES-NI/PCLMUL (or ARMv8 crypto); cryptography releases the GIL.
"""

from __future__ import annotations

from typing import Any

from backstream import Aead, CryptographyAead, Register, hookimpl


class Aes256GcmSuite:
    name = "aes-256-gcm"
    suite_id = 2

    def aead(self, key: bytes) -> Aead:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != 32:
            raise ValueError("aes-256-gcm needs a 32-byte key")
        return CryptographyAead(AESGCM(key), self.name)


@hookimpl
def backstream_register_ciphers(register: Register[Any]) -> None:
    register.add("aes-256-gcm", Aes256GcmSuite())
