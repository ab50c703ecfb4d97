"""The ``chacha20-poly1305`` cipher suite (header suite id 1): RFC 8439 ChaCha20-Poly1305.

Constant-time on every CPU; cryptography's implementation releases the GIL.
"""

from __future__ import annotations

from typing import Any

from backstream import Aead, CryptographyAead, Register, hookimpl


class ChaCha20Poly1305Suite:
    name = "chacha20-poly1305"
    suite_id = 1

    def aead(self, key: bytes) -> Aead:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        return CryptographyAead(ChaCha20Poly1305(key), self.name)


@hookimpl
def backstream_register_ciphers(register: Register[Any]) -> None:
    register.add("chacha20-poly1305", ChaCha20Poly1305Suite())
