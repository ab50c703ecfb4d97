"""The ``azure-keyvault`` key provider, offline: the real azure-keyvault-keys client and azure-core
requests transport against an in-process Key Vault (tests/fixtures/azure_keyvault.py).
"""

from __future__ import annotations

import socket
import sys
import time

import anyio
import pytest
from azure.keyvault.keys.crypto import KeyWrapAlgorithm
from backstream import (
    ConfigError,
    KeyProviderError,
    MissingDependencyError,
    Plugins,
    Stanza,
    encode_context,
    make_plugin_manager,
)
from backstream.plugins import DEFAULT_PLUGINS
from backstream_plugins.kms.azure_keyvault import (
    CONTEXT_MAC_PARAM,
    KEY_ID_PARAM,
    AzureKeyVaultProvider,
    context_mac,
)
from fixtures.azure_keyvault import InProcessVault, StaticTokenCredential
from fixtures.kms_format import RoundTrip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MODULE = "backstream_plugins.kms.azure_keyvault"
CONTEXT = {"backup-id": "20240601T120000Z-9f2c", "database": "app", "codec": "zstd"}
DATA_KEY = bytes(range(32))


def _provider(vault: InProcessVault) -> AzureKeyVaultProvider:
    return AzureKeyVaultProvider(credential=StaticTokenCredential(), transport=vault.transport())


def _wrap(provider: AzureKeyVaultProvider, key_ref: str, context: dict[str, str] = CONTEXT) -> Stanza:
    return anyio.run(lambda: provider.wrap(DATA_KEY, key_ref=key_ref, context=context))


def _unwrap(provider: AzureKeyVaultProvider, stanza: Stanza, context: dict[str, str] = CONTEXT) -> bytes:
    return anyio.run(lambda: provider.unwrap(stanza, context=context))


def _with(stanza: Stanza, **params: str) -> Stanza:
    return Stanza(stanza.scheme, stanza.key_ref, {**stanza.params, **params}, stanza.wrapped_key)


def test_provider_is_a_default_plugin_registered_as_azure_keyvault() -> None:
    assert MODULE in DEFAULT_PLUGINS
    entry = Plugins(make_plugin_manager(autoload=False, defaults=(MODULE,))).kms().entry("azure-keyvault")
    assert entry.available
    assert isinstance(entry.factory, AzureKeyVaultProvider)


def test_round_trip_through_the_vault(azure_vault: InProcessVault) -> None:
    azure_vault.create_key("backups")
    stanza = _wrap(_provider(azure_vault), f"azure-keyvault:{azure_vault.url}/keys/backups")
    assert _unwrap(_provider(azure_vault), stanza) == DATA_KEY


def test_an_object_encrypted_for_the_vault_decrypts_through_the_format(
    azure_vault: InProcessVault, format_round_trip: RoundTrip
) -> None:
    azure_vault.create_key("backups")
    data = bytes(range(256)) * 1000
    key_ref = f"azure-keyvault:{azure_vault.url}/keys/backups"
    providers = {"azure-keyvault": _provider(azure_vault)}
    plaintext, header = anyio.run(format_round_trip, providers, [key_ref], CONTEXT, data)
    assert plaintext == data
    assert [stanza.key_ref for stanza in header.stanzas] == [key_ref]


def test_stanza_records_the_exact_key_version_and_never_the_data_key(azure_vault: InProcessVault) -> None:
    kid = azure_vault.create_key("backups")
    stanza = _wrap(_provider(azure_vault), f"azure-keyvault:{azure_vault.url}/keys/backups")
    assert stanza.scheme == "azure-keyvault"
    assert stanza.key_ref == f"azure-keyvault:{azure_vault.url}/keys/backups"
    assert stanza.params[KEY_ID_PARAM] == kid
    assert stanza.params["alg"] == "RSA-OAEP-256"
    assert len(stanza.wrapped_key) == 256
    assert DATA_KEY not in stanza.wrapped_key


def test_the_real_client_authenticates_through_the_key_vault_challenge(azure_vault: InProcessVault) -> None:
    azure_vault.create_key("backups")
    credential = StaticTokenCredential()
    provider = AzureKeyVaultProvider(credential=credential, transport=azure_vault.transport())
    _unwrap(provider, _wrap(provider, f"azure-keyvault:{azure_vault.url}/keys/backups"))
    assert ("https://vault.azure.net/.default",) in credential.scopes
    assert ("POST", f"/keys/backups/{_version(azure_vault, 'backups', 0)}/unwrapkey") in azure_vault.requests


def test_old_objects_unwrap_after_a_new_key_version(azure_vault: InProcessVault) -> None:
    first = azure_vault.create_key("backups")
    stanza = _wrap(_provider(azure_vault), f"azure-keyvault:{azure_vault.url}/keys/backups")
    second = azure_vault.create_key("backups")
    assert _unwrap(_provider(azure_vault), stanza) == DATA_KEY
    assert (
        _wrap(_provider(azure_vault), f"azure-keyvault:{azure_vault.url}/keys/backups").params[KEY_ID_PARAM]
        == second
        != first
    )


def test_wrapped_key_is_standard_rsa_oaep_256_that_the_sdk_local_crypto_opens(azure_vault: InProcessVault) -> None:
    azure_vault.create_key("backups")
    stanza = _wrap(_provider(azure_vault), f"azure-keyvault:{azure_vault.url}/keys/backups")
    local = azure_vault.keys["backups"][0].local_client()  # CryptographyClient.from_jwk(private key)
    assert local.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, stanza.wrapped_key).key == DATA_KEY


def test_another_key_cannot_unwrap(azure_vault: InProcessVault) -> None:
    azure_vault.create_key("backups")
    other = azure_vault.create_key("other")
    stanza = _wrap(_provider(azure_vault), f"azure-keyvault:{azure_vault.url}/keys/backups")
    with pytest.raises(KeyProviderError, match=r"wrong key or encryption context"):
        _unwrap(_provider(azure_vault), _with(stanza, key_id=other))


def test_wrong_context_cannot_unwrap(azure_vault: InProcessVault) -> None:
    azure_vault.create_key("backups")
    stanza = _wrap(_provider(azure_vault), f"azure-keyvault:{azure_vault.url}/keys/backups")
    with pytest.raises(KeyProviderError, match=r"wrong key or encryption context"):
        _unwrap(_provider(azure_vault), stanza, {**CONTEXT, "backup-id": "20240602T120000Z-0000"})


def test_tampered_context_mac_cannot_unwrap(azure_vault: InProcessVault) -> None:
    azure_vault.create_key("backups")
    stanza = _wrap(_provider(azure_vault), f"azure-keyvault:{azure_vault.url}/keys/backups")
    forged = context_mac(DATA_KEY, {"backup-id": "other"}).hex()
    with pytest.raises(KeyProviderError, match=r"wrong key or encryption context"):
        _unwrap(_provider(azure_vault), _with(stanza, **{CONTEXT_MAC_PARAM: forged}))


def test_tampered_wrapped_key_cannot_unwrap(azure_vault: InProcessVault) -> None:
    azure_vault.create_key("backups")
    stanza = _wrap(_provider(azure_vault), f"azure-keyvault:{azure_vault.url}/keys/backups")
    blob = bytearray(stanza.wrapped_key)
    blob[7] ^= 0x01
    tampered = Stanza(stanza.scheme, stanza.key_ref, stanza.params, bytes(blob))
    with pytest.raises(KeyProviderError, match=r"wrong key or encryption context"):
        _unwrap(_provider(azure_vault), tampered)


def test_without_get_permission_the_vault_wraps_remotely(azure_vault: InProcessVault) -> None:
    """The SDK cannot learn the key version then, so the stanza keeps the URL it was given."""
    azure_vault.create_key("backups")
    azure_vault.permissions.discard("get")
    stanza = _wrap(_provider(azure_vault), f"azure-keyvault:{azure_vault.url}/keys/backups")
    assert ("POST", "/keys/backups//wrapkey") in azure_vault.requests
    assert stanza.params[KEY_ID_PARAM] == f"{azure_vault.url}/keys/backups"
    assert _unwrap(_provider(azure_vault), stanza) == DATA_KEY


def test_missing_unwrap_permission_is_reported_as_denied(azure_vault: InProcessVault) -> None:
    azure_vault.create_key("backups")
    stanza = _wrap(_provider(azure_vault), f"azure-keyvault:{azure_vault.url}/keys/backups")
    azure_vault.permissions.discard("unwrapKey")
    with pytest.raises(KeyProviderError, match=r"denied unwrap .*unwrapKey permission"):
        _unwrap(_provider(azure_vault), stanza)


def test_unknown_key_fails_with_one_line(azure_vault: InProcessVault) -> None:
    with pytest.raises(KeyProviderError, match="does not exist") as info:
        _wrap(_provider(azure_vault), f"azure-keyvault:{azure_vault.url}/keys/missing")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "key_ref",
    [
        "azure-keyvault:backups",
        "azure-keyvault:http://vault.example/keys/backups",
        "azure-keyvault:https://vault.example/secrets/backups",
        "azure-keyvault:https://v/keys",
    ],
)
def test_a_key_ref_that_is_not_a_key_url_is_a_config_error(key_ref: str) -> None:
    with pytest.raises(ConfigError, match=r"expected azure-keyvault:https://"):
        _wrap(AzureKeyVaultProvider(credential=StaticTokenCredential()), key_ref)


def test_unreachable_vault_fails_fast() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = AzureKeyVaultProvider(credential=StaticTokenCredential())  # the SDK's default transport
    started = time.monotonic()
    with pytest.raises(KeyProviderError, match="cannot reach Azure Key Vault"):
        _wrap(provider, f"azure-keyvault:https://127.0.0.1:{port}/keys/backups")
    assert time.monotonic() - started < 10


def test_provider_refuses_a_stanza_of_another_scheme() -> None:
    stanza = Stanza(scheme="aws-kms", key_ref="aws-kms:alias/x", wrapped_key=b"x")
    with pytest.raises(KeyProviderError, match="aws-kms"):
        _unwrap(AzureKeyVaultProvider(credential=StaticTokenCredential()), stanza)


def test_context_mac_matches_its_test_vector() -> None:
    """The vector docs/kms.md quotes: data key 00..1f, CONTEXT in the canonical encoding."""
    assert encode_context(CONTEXT).hex() == CONTEXT_HEX
    assert context_mac(DATA_KEY, CONTEXT).hex() == "b5252cb0a1cdb32bdb602fbe0dd02894a1844cebfcd414915f8e5cf3357c0fa0"


CONTEXT_HEX = (
    "03"
    "09"
    "6261636b75702d6964"
    "0015"
    "3230323430363031543132303030305a2d39663263"  # backup-id
    "05"
    "636f646563"
    "0004"
    "7a737464"  # codec
    "08"
    "6461746162617365"
    "0003"
    "617070"  # database
)


def test_missing_sdk_is_listed_unavailable_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name == "azure.keyvault" or name.startswith("azure.keyvault.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "azure.keyvault", None)
    entry = Plugins(make_plugin_manager(autoload=False, defaults=(MODULE,))).kms().entry("azure-keyvault")
    assert not entry.available
    assert "pip install 'backstream[azure-keyvault]'" in (entry.unavailable_reason or "")
    with pytest.raises(MissingDependencyError, match=r"backstream\[azure-keyvault\]"):
        _wrap(
            AzureKeyVaultProvider(credential=StaticTokenCredential()), "azure-keyvault:https://v.vault.azure.net/keys/k"
        )


CONTEXTS = st.dictionaries(
    st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,15}", fullmatch=True), st.text(max_size=40), min_size=1, max_size=5
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(context=CONTEXTS, other=CONTEXTS)
def test_only_the_wrapping_context_unwraps(
    azure_vault: InProcessVault, context: dict[str, str], other: dict[str, str]
) -> None:
    if "backups" not in azure_vault.keys:
        azure_vault.create_key("backups")
    provider = _provider(azure_vault)
    stanza = _wrap(provider, f"azure-keyvault:{azure_vault.url}/keys/backups", context)
    assert _unwrap(provider, stanza, context) == DATA_KEY
    if other != context:
        with pytest.raises(KeyProviderError):
            _unwrap(provider, stanza, other)


def _version(vault: InProcessVault, name: str, index: int) -> str:
    return vault.keys[name][index].kid.rsplit("/", 1)[1]
