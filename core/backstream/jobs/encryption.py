"""The link between jobs and the encrypted object format (backstream.crypto): encrypt and decrypt stages.

Key references (``passphrase``, ``local:PATH``, ``aws-kms:KEY``, ...) are resolved through the ``kms`` registry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from backstream.defaults import DEFAULT_CIPHER
from backstream.errors import ConfigError
from backstream.pipeline import Transform
from backstream.plugins import Plugins
from backstream.protocols import KeyProvider, PreparedKeys

if TYPE_CHECKING:
    from backstream.crypto import AuditLog

# backstream.crypto (and the cryptography library under it) is imported where a key is used, so
# that jobs which store nothing encrypted (an unencrypted wal-push) do not pay for importing it.


@dataclass(frozen=True)
class KeyOptions:
    """How keys are found: the cipher suite for new objects, provider options (``passphrase_file``,
    ``keystore``, ``kdf.*``, ...) and the audit log (None = the default location).

    One job uses one KeyOptions: its configured providers are made once (``providers``), so a
    passphrase typed at a prompt or a keystore key unsealed for the first object serves the
    job's other objects too (a directory-format restore, binlogs replayed one after another)."""

    cipher: str = DEFAULT_CIPHER
    provider_options: Mapping[str, str] = field(default_factory=dict)
    audit: AuditLog | None = None
    _configured: list[tuple[Plugins, dict[str, KeyProvider]]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )

    def providers(self, plugins: Plugins) -> dict[str, KeyProvider]:
        """The key providers of ``plugins`` configured with ``provider_options``, made on first use."""
        for owner, providers in self._configured:
            if owner is plugins:
                return providers
        from backstream.crypto import key_providers

        providers = key_providers(plugins.kms(), self.provider_options)
        self._configured.append((plugins, providers))
        return providers


def encryption_available(plugins: Plugins) -> bool:
    """True when backups can be encrypted to a passphrase here (a cipher suite and the provider exist)."""
    kms, ciphers = plugins.kms(), plugins.ciphers()
    return (
        "passphrase" in kms
        and kms.entry("passphrase").available
        and DEFAULT_CIPHER in ciphers
        and ciphers.entry(DEFAULT_CIPHER).available
    )


def prepared_providers(
    plugins: Plugins, key_refs: Sequence[str], keys: KeyOptions | None = None
) -> dict[str, KeyProvider]:
    """The key providers, configured with ``keys``' options, each told to begin its next wrap
    for ``key_refs`` now (optional ``prepare(key_ref)``: a passphrase's KDF starts in the
    background), so that slow key work overlaps the job's start-up. Pass the result to
    ``encrypting_transform``; a provider without ``prepare`` simply does its work in ``wrap``."""
    from backstream.crypto import key_providers, scheme_of

    providers = key_providers(plugins.kms(), (keys or KeyOptions()).provider_options)  # copies of the job's own
    for ref in key_refs:
        provider = providers.get(scheme_of(ref))
        if isinstance(provider, PreparedKeys):
            provider.prepare(ref)
    return providers


async def encrypting_transform(
    plugins: Plugins,
    key_refs: Sequence[str],
    context: Mapping[str, str],
    *,
    keys: KeyOptions | None = None,
    object_name: str = "",
    providers: Mapping[str, KeyProvider] | None = None,
) -> tuple[Transform, str]:
    """A pipeline stage that writes one new encrypted object (v1 format), and the cipher suite's name.

    A fresh data key is wrapped for every key reference; ``context`` is bound into the header.
    ``providers``: from ``prepared_providers`` (default: configured here, nothing prepared)."""
    keys = keys or KeyOptions()
    if not key_refs:
        raise ConfigError("no key reference to encrypt to")
    cipher = plugins.ciphers().get(keys.cipher)
    from backstream.crypto import new_encryptor

    encryptor = await new_encryptor(
        key_refs,
        providers=providers if providers is not None else keys.providers(plugins),
        cipher=cipher,
        context=context,
        object_name=object_name,
        audit=keys.audit,
    )
    return Transform("encrypt", encryptor), cipher.name


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
    from backstream.crypto import open_encrypted

    decryption = await open_encrypted(
        stored,
        providers=keys.providers(plugins),
        ciphers=ciphers,
        expect_context=context,
        object_name=object_name,
        audit=keys.audit,
    )
    return Transform("decrypt", decryption.codec), decryption.rest
