"""The link between jobs and the encrypted object format (backstream.crypto): encrypt and decrypt stages.

Key references (``passphrase``, ``local:PATH``, ``aws-kms:KEY``, ...) are resolved through the ``kms`` registry.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from backstream.crypto import AuditLog, key_providers, new_encryptor, open_encrypted
from backstream.errors import ConfigError, KeyProviderError
from backstream.pipeline import Transform
from backstream.plugins import Plugins
from backstream.protocols import Codec

DEFAULT_CIPHER = "chacha20-poly1305"


@dataclass(frozen=True)
class KeyOptions:
    """How keys are found: the cipher suite for new objects, provider options (``passphrase_file``,
    ``keystore``, ``kdf.*``, ...) and the audit log (None = the default location)."""

    cipher: str = DEFAULT_CIPHER
    provider_options: Mapping[str, str] = field(default_factory=dict)
    audit: AuditLog | None = None


def encryption_available(plugins: Plugins) -> bool:
    """True when backups can be encrypted to a passphrase here (a cipher suite and the provider exist)."""
    kms, ciphers = plugins.kms(), plugins.ciphers()
    return (
        "passphrase" in kms
        and kms.entry("passphrase").available
        and DEFAULT_CIPHER in ciphers
        and ciphers.entry(DEFAULT_CIPHER).available
    )


async def encrypting_transform(
    plugins: Plugins,
    key_refs: Sequence[str],
    context: Mapping[str, str],
    *,
    keys: KeyOptions | None = None,
    object_name: str = "",
) -> tuple[Transform, str]:
    """A pipeline stage that writes one new encrypted object (v1 format), and the cipher suite's name.

    A fresh data key is wrapped for every key reference; ``context`` is bound into the header."""
    keys = keys or KeyOptions()
    if not key_refs:
        raise ConfigError("no key reference to encrypt to")
    cipher = plugins.ciphers().get(keys.cipher)
    encryptor = await new_encryptor(
        key_refs,
        providers=key_providers(plugins.kms(), keys.provider_options),
        cipher=cipher,
        context=context,
        object_name=object_name,
        audit=keys.audit,
    )
    return Transform("encrypt", encryptor), cipher.name


class PendingCodec:
    """A codec whose real codec is still being made (a data key being wrapped: a passphrase KDF
    or a KMS call), so the pipeline can start meanwhile: its worker thread waits at the first
    call. ``resolve``/``fail`` come from the task making it; the pipeline calls ``interrupt``
    when the run is torn down, which wakes a waiting thread."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._codec: Codec | None = None
        self._error: BaseException | None = None

    def resolve(self, codec: Codec) -> None:
        self._codec = codec
        self._ready.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._ready.set()

    def interrupt(self) -> None:
        if not self._ready.is_set():
            self.fail(KeyProviderError("the data key was not ready when the run stopped"))

    def _get(self) -> Codec:
        self._ready.wait()
        if self._error is not None:
            raise self._error
        assert self._codec is not None
        return self._codec

    def update(self, chunk: bytes) -> bytes:
        return self._get().update(chunk)

    def finish(self) -> bytes:
        return self._get().finish()


async def open_decrypting(
    plugins: Plugins,
    stored: AsyncIterator[bytes],
    context: Mapping[str, str],
    *,
    keys: KeyOptions | None = None,
    object_name: str = "",
) -> tuple[Transform, AsyncIterator[bytes]]:
    """Read an encrypted object's header from ``stored``, check its context, unwrap its data key;
    return the decrypting stage and the rest of the stream to feed it."""
    keys = keys or KeyOptions()
    ciphers = [entry.factory for entry in plugins.ciphers() if entry.available]
    decryption = await open_encrypted(
        stored,
        providers=key_providers(plugins.kms(), keys.provider_options),
        ciphers=ciphers,
        expect_context=context,
        object_name=object_name,
        audit=keys.audit,
    )
    return Transform("decrypt", decryption.codec), decryption.rest
