"""Envelope encryption of objects: wrap a fresh data key for each key reference, open objects, re-wrap.

Providers are looked up by key-reference scheme; every wrap, unwrap and rotation is audited.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backstream.crypto.audit import AuditLog
from backstream.crypto.header import (
    DATA_KEY_SIZE,
    SALT_SIZE,
    Header,
    assemble_header,
    encode_preamble,
    encode_stanza,
    object_id,
    read_header,
)
from backstream.crypto.stream import StreamDecryptor, StreamEncryptor, header_mac_key, payload_key
from backstream.errors import ConfigError, IntegrityError, KeyProviderError, PluginError
from backstream.protocols import Aead, CipherFactory, ConfigurableKeys, ExclusiveKeys, KeyProvider, Stanza
from backstream.registry import Registry


class Encryptor(StreamEncryptor):
    """The push codec that writes one new encrypted object: its header, then the sealed chunks."""

    def __init__(self, header: Header, aead: Aead) -> None:
        super().__init__(aead, prefix=header.raw)
        self.header = header


@dataclass
class Decryption:
    """An opened object: its verified header, the decrypting codec, and the payload bytes to feed it."""

    header: Header
    codec: StreamDecryptor
    rest: AsyncIterator[bytes]
    cipher: CipherFactory
    stanza: Stanza
    """The stanza that opened the object."""


@dataclass
class Rewrapped:
    """A re-wrapped object: the new header, the old one, and the unchanged payload bytes."""

    header: Header
    old_header: Header
    rest: AsyncIterator[bytes]


def scheme_of(key_ref: str) -> str:
    """The provider scheme of a key reference: the part before the first ``:``."""
    scheme = key_ref.split(":", 1)[0].strip()
    if not scheme:
        raise ConfigError(f"bad key reference {key_ref!r}: expected SCHEME[:...], e.g. passphrase or local:PATH")
    return scheme


def configure_provider(provider: KeyProvider, options: Mapping[str, str]) -> KeyProvider:
    """``provider.configure(options)`` when it is ``ConfigurableKeys``, else the provider itself.

    Called even without options: the copy is the caller's own, so per-run state (a passphrase
    typed at a prompt, unsealed keystore keys, a prepared key) never passes from one job to the
    next through the registered instance. Jobs make their copies once (``KeyOptions.providers``)."""
    if not isinstance(provider, ConfigurableKeys):
        return provider
    return provider.configure(options)


def key_providers(registry: Registry[KeyProvider], options: Mapping[str, str] | None = None) -> dict[str, KeyProvider]:
    """Every registered key provider by scheme, configured with ``options``. A provider whose
    optional dependency is missing is kept as a stub that raises the install hint when used."""
    providers: dict[str, KeyProvider] = {}
    for entry in registry:
        if entry.available:
            providers[entry.name] = configure_provider(entry.factory, options or {})
        else:
            providers[entry.name] = _Unavailable(entry.name, entry.unavailable_reason or "unavailable")
    return providers


def is_exclusive(provider: KeyProvider | None) -> bool:
    """True for providers whose stanza must be an object's only stanza (e.g. passphrases)."""
    return isinstance(provider, ExclusiveKeys) and bool(provider.exclusive)


async def new_encryptor(
    key_refs: Sequence[str],
    *,
    providers: Mapping[str, KeyProvider],
    cipher: CipherFactory,
    context: Mapping[str, str],
    object_name: str = "",
    audit: AuditLog | None = None,
) -> Encryptor:
    """Start a new object: a fresh random data key and salt, one stanza per key reference
    (``await provider.wrap``), the header MAC; returns the codec that writes header + payload."""
    audit = audit if audit is not None else AuditLog()
    salt = os.urandom(SALT_SIZE)
    preamble = encode_preamble(cipher.suite_id, salt, context)
    data_key = os.urandom(DATA_KEY_SIZE)
    stanzas = await _wrap_all(
        data_key, key_refs, providers, context, audit=audit, object_name=object_name, preamble=preamble
    )
    header = assemble_header(preamble, stanzas, header_mac_key(data_key, salt))
    return Encryptor(header, cipher.aead(payload_key(data_key, salt, header.preamble)))


def build_object_header(
    *, suite_id: int, salt: bytes, context: Mapping[str, str], stanzas: Sequence[Stanza], data_key: bytes
) -> Header:
    """A header from fixed inputs (test vectors, tools). Normal encryption uses ``new_encryptor``."""
    preamble = encode_preamble(suite_id, salt, context)
    return assemble_header(preamble, stanzas, header_mac_key(data_key, salt))


async def open_encrypted(
    stream: AsyncIterator[bytes],
    *,
    providers: Mapping[str, KeyProvider],
    ciphers: Iterable[CipherFactory],
    expect_context: Mapping[str, str] | None = None,
    object_name: str = "",
    audit: AuditLog | None = None,
) -> Decryption:
    """Read the header from ``stream``, unwrap the data key with the first stanza a provider opens,
    verify the header MAC; return the decrypting codec and the rest of the stream to feed it.

    ``expect_context`` values must equal the header's (e.g. the backup id from the manifest).
    No stanza opens -> KeyProviderError; a bad header -> IntegrityError."""
    audit = audit if audit is not None else AuditLog()
    header, leftover = await read_header(stream)
    cipher = cipher_for(header.suite_id, ciphers)
    data_key, stanza = await _unwrap(header, providers, expect_context, audit=audit, object_name=object_name)
    aead = cipher.aead(payload_key(data_key, header.salt, header.preamble))
    return Decryption(
        header=header, codec=StreamDecryptor(aead), rest=_chain(leftover, stream), cipher=cipher, stanza=stanza
    )


async def rewrap_encrypted(
    stream: AsyncIterator[bytes],
    key_refs: Sequence[str],
    *,
    providers: Mapping[str, KeyProvider],
    wrap_providers: Mapping[str, KeyProvider] | None = None,
    keep_existing: bool = False,
    expect_context: Mapping[str, str] | None = None,
    object_name: str = "",
    audit: AuditLog | None = None,
) -> Rewrapped:
    """Key rotation: open the header with ``providers``, wrap the same data key for ``key_refs``
    (with ``wrap_providers``, default ``providers``) and MAC the new header. The payload bytes
    in ``rest`` are untouched: the payload key binds only the header's preamble."""
    audit = audit if audit is not None else AuditLog()
    wrap_providers = wrap_providers if wrap_providers is not None else providers
    old, leftover = await read_header(stream)
    data_key, _ = await _unwrap(old, providers, expect_context, audit=audit, object_name=object_name)
    kept = list(old.stanzas) if keep_existing else []
    kept_refs = {(s.scheme, s.key_ref) for s in kept}
    _check_exclusive_refs([*(s.scheme for s in kept), *(scheme_of(ref) for ref in key_refs)], wrap_providers)
    new = await _wrap_all(
        data_key, key_refs, wrap_providers, old.context, audit=audit, object_name=object_name, preamble=old.preamble
    )
    stanzas = kept + [s for s in new if (s.scheme, s.key_ref) not in kept_refs]
    header = assemble_header(old.preamble, stanzas, header_mac_key(data_key, old.salt))
    await audit.record(
        "rotate",
        object=object_name,
        object_id=header.object_id,
        old_keys=[s.key_ref for s in old.stanzas],
        new_keys=[s.key_ref for s in header.stanzas],
        context=dict(header.context),
    )
    return Rewrapped(header=header, old_header=old, rest=_chain(leftover, stream))


def cipher_for(suite_id: int, ciphers: Iterable[CipherFactory]) -> CipherFactory:
    """The registered cipher suite with this header suite id (unknown -> IntegrityError)."""
    known = []
    for cipher in ciphers:
        if cipher.suite_id == suite_id:
            return cipher
        known.append(f"{cipher.suite_id} ({cipher.name})")
    raise IntegrityError(f"unknown cipher suite {suite_id} in the header (known: {', '.join(known) or 'none'})")


# --- internals --------------------------------------------------------------------------------


async def _wrap_all(
    data_key: bytes,
    key_refs: Sequence[str],
    providers: Mapping[str, KeyProvider],
    context: Mapping[str, str],
    *,
    audit: AuditLog,
    object_name: str,
    preamble: bytes,
) -> list[Stanza]:
    if not key_refs:
        raise ConfigError("no key given: pass at least one --key (e.g. passphrase, or local:PATH)")
    if len(set(key_refs)) != len(key_refs):
        raise ConfigError("the same key reference is given twice")
    schemes = [scheme_of(ref) for ref in key_refs]
    resolved = [_provider(providers, scheme) for scheme in schemes]
    _check_exclusive_refs(schemes, providers)
    stanzas = []
    for ref, scheme, provider in zip(key_refs, schemes, resolved, strict=True):
        stanza = await provider.wrap(data_key, key_ref=ref, context=context)
        _check_stanza(stanza, scheme)
        await audit.record(
            "wrap",
            scheme=scheme,
            key_ref=stanza.key_ref,
            key_id=stanza.params.get("key_id"),
            object=object_name,
            object_id=object_id(preamble),
            context=dict(context),
        )
        stanzas.append(stanza)
    return stanzas


async def _unwrap(
    header: Header,
    providers: Mapping[str, KeyProvider],
    expect_context: Mapping[str, str] | None,
    *,
    audit: AuditLog,
    object_name: str,
) -> tuple[bytes, Stanza]:
    _check_context(header, expect_context)
    if len(header.stanzas) > 1:
        for stanza in header.stanzas:
            if is_exclusive(providers.get(stanza.scheme)):
                raise IntegrityError(
                    f"corrupt header: a {stanza.scheme!r} stanza must be the only stanza of its object"
                )
    failures: list[tuple[str, Exception]] = []
    for stanza in header.stanzas:
        provider = providers.get(stanza.scheme)
        if provider is None:
            known = ", ".join(sorted(providers)) or "none"
            failures.append((stanza.scheme, KeyProviderError(f"no key provider for this scheme (known: {known})")))
            continue
        fields: dict[str, Any] = {
            "scheme": stanza.scheme,
            "key_ref": stanza.key_ref,
            "key_id": stanza.params.get("key_id"),
            "object": object_name,
            "object_id": header.object_id,
            "context": dict(header.context),
        }
        try:
            data_key = await provider.unwrap(stanza, context=header.context)
        except (KeyProviderError, PluginError, ConfigError) as exc:
            failures.append((stanza.scheme, exc))
            await audit.record("unwrap", outcome="failed", error=str(exc), **fields)
            continue
        if len(data_key) != DATA_KEY_SIZE:
            bad_size = KeyProviderError(f"the provider returned a {len(data_key)}-byte key, not {DATA_KEY_SIZE}")
            failures.append((stanza.scheme, bad_size))
            await audit.record("unwrap", outcome="failed", error=str(bad_size), **fields)
            continue
        expected = hmac.new(header_mac_key(data_key, header.salt), header.authenticated_part, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, header.mac):
            await audit.record("unwrap", outcome="failed", error="header MAC mismatch", **fields)
            raise IntegrityError("header authentication failed: the header was modified or spliced from another object")
        await audit.record("unwrap", outcome="ok", **fields)
        return data_key, stanza
    if failures and all(isinstance(exc, ConfigError) for _, exc in failures):
        raise failures[0][1]
    reasons = "; ".join(f"{scheme}: {exc}" for scheme, exc in failures)
    raise KeyProviderError(f"wrong passphrase or key: no stanza could be unwrapped ({reasons})")


def _check_context(header: Header, expect_context: Mapping[str, str] | None) -> None:
    for key, value in (expect_context or {}).items():
        actual = header.context.get(key)
        if actual != value:
            shown = "missing" if actual is None else repr(actual)
            raise IntegrityError(f"wrong object context: {key} is {shown}, expected {value!r}")


def _check_exclusive_refs(schemes: Sequence[str], providers: Mapping[str, KeyProvider]) -> None:
    if len(schemes) > 1:
        for scheme in schemes:
            if is_exclusive(providers.get(scheme)):
                raise ConfigError(f"a {scheme!r} key must be the only key of an object; drop the other --key options")


def _provider(providers: Mapping[str, KeyProvider], scheme: str) -> KeyProvider:
    provider = providers.get(scheme)
    if provider is None:
        known = ", ".join(sorted(providers)) or "none"
        raise ConfigError(f"unknown key provider {scheme!r} (known: {known})")
    return provider


def _check_stanza(stanza: Stanza, scheme: str) -> None:
    if not isinstance(stanza, Stanza) or stanza.scheme != scheme:
        raise PluginError(f"key provider {scheme!r} returned a stanza of another scheme")
    try:
        encode_stanza(stanza)
    except ConfigError as exc:
        raise PluginError(f"key provider {scheme!r} returned an invalid stanza: {exc}") from exc


async def _chain(first: bytes, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in stream:
        yield chunk


class _Unavailable:
    """Stands in for a registered provider whose optional dependency is missing."""

    exclusive = False

    def __init__(self, scheme: str, reason: str) -> None:
        self.scheme = scheme
        self._reason = reason

    async def wrap(self, data_key: bytes, *, key_ref: str, context: Mapping[str, str]) -> Stanza:
        raise PluginError(self._reason)

    async def unwrap(self, stanza: Stanza, *, context: Mapping[str, str]) -> bytes:
        raise PluginError(self._reason)
