"""``PluginCodecs``: the object path's codecs (``backstream.repository.objects``) from loaded plugins.

One per job: it holds the job's key references and configured key providers, so a passphrase's
KDF or a keystore unseal is done once for all of the job's objects, and one key wrap runs at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence

import anyio

from backstream.errors import ConfigError
from backstream.jobs.common import compressor
from backstream.jobs.encryption import KeyOptions, encrypting_transform, open_decrypting, prepared_providers
from backstream.pipeline import Transform
from backstream.plugins import Plugins
from backstream.protocols import CompressorFactory, KeyProvider
from backstream.repository.objects import Sealing


class PluginCodecs:
    """Compressors, ciphers and key providers of ``plugins`` for one job.

    ``key_refs`` are what new objects are encrypted to (empty: stored unencrypted); with
    ``prepare`` the providers start their slow work (a passphrase's KDF) now, in the background.
    ``keys`` configures the providers for both directions.
    """

    def __init__(
        self,
        plugins: Plugins,
        *,
        key_refs: Sequence[str] = (),
        keys: KeyOptions | None = None,
        prepare: bool = True,
    ) -> None:
        self.plugins = plugins
        self.keys = keys or KeyOptions()
        self.key_refs = tuple(key_refs)
        if any(not ref.strip() for ref in self.key_refs):
            raise ConfigError("an empty key reference was given to encrypt with")
        self._providers: Mapping[str, KeyProvider] | None = (
            prepared_providers(plugins, self.key_refs, self.keys) if self.key_refs and prepare else None
        )
        self._wrap_lock = anyio.Lock()  # one key wrap at a time: passphrase KDFs are heavy

    @property
    def encrypts(self) -> bool:
        return bool(self.key_refs)

    def compressor(self, name: str) -> CompressorFactory:
        return compressor(self.plugins, name)

    async def sealing(self, context: Mapping[str, str], where: str) -> Sealing | None:
        if not self.key_refs:
            return None
        async with self._wrap_lock:
            stage, cipher = await encrypting_transform(
                self.plugins, self.key_refs, context, keys=self.keys, object_name=where, providers=self._providers
            )
        return Sealing(stage, cipher, self.key_refs)

    async def unsealing(
        self, stored: AsyncIterator[bytes], context: Mapping[str, str], where: str
    ) -> tuple[Transform, AsyncIterator[bytes]]:
        return await open_decrypting(self.plugins, stored, context, keys=self.keys, object_name=where)
