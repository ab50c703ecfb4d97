"""The ``passphrase`` key provider: the data key wrapped under a key derived from a passphrase.

Argon2id (t=3, m=64 MiB, p=4) by default, scrypt on request; a passphrase stanza is its object's only stanza.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

import anyio.to_thread
from backstream import (
    ConfigError,
    KeyProviderError,
    Register,
    Stanza,
    check_kdf_params,
    derive_passphrase_key,
    hookimpl,
    new_kdf_params,
    read_passphrase,
)

SCHEME = "passphrase"
WRAP_LABEL = b"backstream/v1 passphrase"
"""Associated data of the wrapped data key (the header MAC binds the rest of the header)."""
ZERO_NONCE = bytes(12)
"""Safe: every wrap key is fresh (new random KDF salt per object)."""

OPTIONS = (
    "passphrase_file",
    "passphrase_env",
    "passphrase_prompt",
    "interactive",
    "kdf",
    "kdf.t",
    "kdf.m",
    "kdf.p",
    "kdf.ln",
    "kdf.r",
)
"""Options ``configure`` understands; others are ignored. ``kdf.*`` override the KDF costs of new
stanzas (only for tests and deliberate trade-offs: lower values weaken the passphrase)."""


class PassphraseProvider:
    """Key references: ``passphrase`` (Argon2id), ``passphrase:argon2id`` or ``passphrase:scrypt``."""

    scheme = SCHEME
    exclusive = True

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        self._options = dict(options or {})
        self._cached: bytes | None = None
        self._prepared: tuple[str, dict[str, str], Future[bytes]] | None = None

    def configure(self, options: Mapping[str, str]) -> PassphraseProvider:
        return PassphraseProvider({**self._options, **options})

    def prepare(self, key_ref: str) -> None:
        """Start the next ``wrap``'s KDF for ``key_ref`` now, in a background thread, so that it
        runs while the job starts up (~0.1 s of Argon2id). Only when the passphrase comes from a
        file or the environment: a prompt is never shown from the background."""
        if self._prepared is not None or not self._given():
            return
        try:
            params = self._new_params(key_ref)
        except ConfigError:
            return  # wrap() reports it, in its place
        future: Future[bytes] = Future()

        def derive() -> None:
            try:
                future.set_result(derive_passphrase_key(self._read(confirm=False), params))
            except BaseException as exc:  # handed to wrap(), which raises it
                future.set_exception(exc)

        threading.Thread(target=derive, name="backstream-kdf", daemon=True).start()
        self._prepared = (key_ref, params, future)

    async def wrap(self, data_key: bytes, *, key_ref: str, context: Mapping[str, str]) -> Stanza:
        prepared, self._prepared = self._prepared, None  # a prepared key serves one wrap only
        if prepared is not None and prepared[0] == key_ref:
            params, wrap_key = prepared[1], await anyio.to_thread.run_sync(prepared[2].result)
        else:
            params = self._new_params(key_ref)
            passphrase = await self._passphrase(confirm=True)
            wrap_key = await anyio.to_thread.run_sync(derive_passphrase_key, passphrase, params)
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        wrapped = ChaCha20Poly1305(wrap_key).encrypt(ZERO_NONCE, data_key, WRAP_LABEL)
        return Stanza(scheme=SCHEME, key_ref=SCHEME, params=params, wrapped_key=wrapped)

    async def unwrap(self, stanza: Stanza, *, context: Mapping[str, str]) -> bytes:
        checked = check_kdf_params(stanza.params)  # hostile work factors are refused here, before any work
        if len(stanza.wrapped_key) != 48:
            raise KeyProviderError("malformed passphrase stanza (wrapped key is not 48 bytes)")
        passphrase = await self._passphrase(confirm=False)
        wrap_key = await anyio.to_thread.run_sync(derive_passphrase_key, passphrase, checked)
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        try:
            return ChaCha20Poly1305(wrap_key).decrypt(ZERO_NONCE, stanza.wrapped_key, WRAP_LABEL)
        except InvalidTag:
            raise KeyProviderError("wrong passphrase") from None

    def _new_params(self, key_ref: str) -> dict[str, str]:
        """Fresh KDF parameters (a new random salt) for a wrap to ``key_ref``."""
        prefix = "kdf."
        overrides = {
            name.removeprefix(prefix): value for name, value in self._options.items() if name.startswith(prefix)
        }
        return new_kdf_params(self._kdf_for(key_ref), overrides)

    def _kdf_for(self, key_ref: str) -> str:
        scheme, _, rest = key_ref.partition(":")
        if scheme != SCHEME:
            raise ConfigError(f"not a passphrase key reference: {key_ref!r}")
        return rest or self._options.get("kdf", "argon2id")

    async def _passphrase(self, *, confirm: bool) -> bytes:
        if self._cached is not None:
            return self._cached
        passphrase = await anyio.to_thread.run_sync(lambda: self._read(confirm=confirm))
        if not self._given():
            self._cached = passphrase  # typed at a prompt: ask once per run
        return passphrase

    def _env_name(self) -> str:
        return self._options.get("passphrase_env", "BACKSTREAM_PASSPHRASE")

    def _given(self) -> bool:
        """True when the passphrase comes from a file or the environment (no prompt)."""
        return bool(self._options.get("passphrase_file") or os.environ.get(self._env_name()))

    def _read(self, *, confirm: bool) -> bytes:
        interactive = self._options.get("interactive")
        return read_passphrase(
            file=self._options.get("passphrase_file") or None,
            env=(self._env_name(),),
            prompt=self._options.get("passphrase_prompt", "Passphrase: "),
            confirm=confirm,
            interactive=None if interactive is None else interactive == "yes",
        )


@hookimpl
def backstream_register_kms(register: Register[Any]) -> None:
    register.add(SCHEME, PassphraseProvider())
