"""Key providers' optional capabilities are typed protocols, checked with isinstance.

A provider has a capability by implementing its member (no base class); the core asks
``isinstance(provider, Capability)``, never ``getattr``.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from backstream import (
    ConfigError,
    ConfigurableKeys,
    CreatesKeys,
    ExclusiveKeys,
    ExportsPublicKeys,
    Plugins,
    PreparedKeys,
    Stanza,
    key_providers,
)
from backstream.cli.main import main
from backstream.crypto.envelope import configure_provider, is_exclusive

CAPABILITIES = (ExclusiveKeys, ConfigurableKeys, PreparedKeys, CreatesKeys, ExportsPublicKeys)


def capabilities(provider: object) -> set[str]:
    return {capability.__name__ for capability in CAPABILITIES if isinstance(provider, capability)}


def test_the_built_in_providers_declare_what_they_can_do() -> None:
    providers = key_providers(Plugins.load(autoload=False).kms())
    assert capabilities(providers["passphrase"]) == {"ExclusiveKeys", "ConfigurableKeys", "PreparedKeys"}
    assert capabilities(providers["local"]) == {"ExclusiveKeys", "ConfigurableKeys", "CreatesKeys", "ExportsPublicKeys"}
    assert is_exclusive(providers["passphrase"]) and not is_exclusive(providers["local"])


class Bare:
    """A provider with only the required members: wrap and unwrap."""

    scheme = "bare"

    async def wrap(self, data_key: bytes, *, key_ref: str, context: Mapping[str, str]) -> Stanza:
        return Stanza(self.scheme, key_ref, {}, data_key)

    async def unwrap(self, stanza: Stanza, *, context: Mapping[str, str]) -> bytes:
        return stanza.wrapped_key


def test_a_provider_without_optional_members_has_no_capability_and_is_used_as_it_is() -> None:
    bare = Bare()
    assert capabilities(bare) == set()
    assert configure_provider(bare, {"anything": "1"}) is bare
    assert not is_exclusive(bare)


def test_keys_create_with_a_provider_that_cannot_create_keys_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "passphrase"]) == ConfigError.exit_code
    err = capsys.readouterr().err
    assert err.strip() == (
        "backstream: error: the 'passphrase' provider cannot create keys; "
        "create them in the KMS and pass their reference"
    )
