"""The ``gcp-kms`` key provider, offline: the real google-cloud-kms client, its gRPC transport and
protobuf messages against a loopback KeyManagementService (tests/fixtures/gcp_kms.py).
"""

from __future__ import annotations

import socket
import sys
import time

import anyio
import grpc
import pytest
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
from backstream_plugins.kms.gcp_kms import KEY_ID_PARAM, GcpKmsProvider, crc32c
from fixtures.gcp_kms import PARENT, LoopbackKms
from fixtures.kms_format import RoundTrip
from google.cloud.kms_v1.services.key_management_service.transports import KeyManagementServiceGrpcTransport
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MODULE = "backstream_plugins.kms.gcp_kms"
CONTEXT = {"backup-id": "20240601T120000Z-9f2c", "database": "app", "codec": "zstd"}
DATA_KEY = bytes(range(32))


def _provider(kms: LoopbackKms) -> GcpKmsProvider:
    return GcpKmsProvider(transport=kms.transport())


def _wrap(provider: GcpKmsProvider, key_ref: str, context: dict[str, str] = CONTEXT) -> Stanza:
    return anyio.run(lambda: provider.wrap(DATA_KEY, key_ref=key_ref, context=context))


def _unwrap(provider: GcpKmsProvider, stanza: Stanza, context: dict[str, str] = CONTEXT) -> bytes:
    return anyio.run(lambda: provider.unwrap(stanza, context=context))


def test_provider_is_a_default_plugin_registered_as_gcp_kms() -> None:
    assert MODULE in DEFAULT_PLUGINS
    entry = Plugins(make_plugin_manager(autoload=False, defaults=(MODULE,))).kms().entry("gcp-kms")
    assert entry.available
    assert isinstance(entry.factory, GcpKmsProvider)


def test_round_trip_through_cloud_kms(gcp_kms: LoopbackKms) -> None:
    name = gcp_kms.create_key("app")
    stanza = _wrap(_provider(gcp_kms), f"gcp-kms:{name}")
    assert _unwrap(_provider(gcp_kms), stanza) == DATA_KEY


def test_an_object_encrypted_for_cloud_kms_decrypts_through_the_format(
    gcp_kms: LoopbackKms, format_round_trip: RoundTrip
) -> None:
    data = bytes(range(256)) * 1000
    key_ref = f"gcp-kms:{gcp_kms.create_key('app')}"
    plaintext, header = anyio.run(format_round_trip, {"gcp-kms": _provider(gcp_kms)}, [key_ref], CONTEXT, data)
    assert plaintext == data
    assert [stanza.key_ref for stanza in header.stanzas] == [key_ref]


def test_stanza_holds_the_ciphertext_and_the_key_version_never_the_data_key(gcp_kms: LoopbackKms) -> None:
    name = gcp_kms.create_key("app")
    stanza = _wrap(_provider(gcp_kms), f"gcp-kms:{name}")
    assert stanza.scheme == "gcp-kms"
    assert stanza.key_ref == f"gcp-kms:{name}"
    assert stanza.params[KEY_ID_PARAM] == f"{name}/cryptoKeyVersions/1"
    assert DATA_KEY not in stanza.wrapped_key


def test_old_objects_unwrap_after_key_rotation(gcp_kms: LoopbackKms) -> None:
    name = gcp_kms.create_key("app")
    stanza = _wrap(_provider(gcp_kms), f"gcp-kms:{name}")
    gcp_kms.rotate(name)
    assert _unwrap(_provider(gcp_kms), stanza) == DATA_KEY
    assert _wrap(_provider(gcp_kms), f"gcp-kms:{name}").params[KEY_ID_PARAM] == f"{name}/cryptoKeyVersions/2"


def test_another_key_cannot_unwrap(gcp_kms: LoopbackKms) -> None:
    stanza = _wrap(_provider(gcp_kms), f"gcp-kms:{gcp_kms.create_key('app')}")
    other = gcp_kms.create_key("other")
    forged = Stanza(stanza.scheme, f"gcp-kms:{other}", stanza.params, stanza.wrapped_key)
    with pytest.raises(KeyProviderError, match=r"wrong key or encryption context"):
        _unwrap(_provider(gcp_kms), forged)


def test_wrong_context_cannot_unwrap(gcp_kms: LoopbackKms) -> None:
    stanza = _wrap(_provider(gcp_kms), f"gcp-kms:{gcp_kms.create_key('app')}")
    with pytest.raises(KeyProviderError, match=r"wrong key or encryption context"):
        _unwrap(_provider(gcp_kms), stanza, {**CONTEXT, "backup-id": "20240602T120000Z-0000"})


def test_tampered_ciphertext_cannot_unwrap(gcp_kms: LoopbackKms) -> None:
    stanza = _wrap(_provider(gcp_kms), f"gcp-kms:{gcp_kms.create_key('app')}")
    blob = bytearray(stanza.wrapped_key)
    blob[-1] ^= 0x01
    with pytest.raises(KeyProviderError, match=r"wrong key or encryption context"):
        _unwrap(_provider(gcp_kms), Stanza(stanza.scheme, stanza.key_ref, stanza.params, bytes(blob)))


def test_the_aad_sent_is_the_canonical_context(gcp_kms: LoopbackKms) -> None:
    """Anyone with the key and the context can decrypt with Cloud KMS directly (no lock-in)."""
    name = gcp_kms.create_key("app")
    stanza = _wrap(_provider(gcp_kms), f"gcp-kms:{name}", {"database": "app", "backup-id": "b1"})
    client = GcpKmsProvider(transport=gcp_kms.transport())._client()
    aad = bytes.fromhex("02096261636b75702d6964000262310864617461626173650003617070")
    assert encode_context({"database": "app", "backup-id": "b1"}) == aad
    response = client.decrypt(
        request={"name": name, "ciphertext": stanza.wrapped_key, "additional_authenticated_data": aad}
    )
    assert response.plaintext == DATA_KEY


def test_denied_permission_is_reported(gcp_kms: LoopbackKms) -> None:
    name = gcp_kms.create_key("app")
    stanza = _wrap(_provider(gcp_kms), f"gcp-kms:{name}")
    gcp_kms.denied.add("cloudkms.cryptoKeyVersions.useToDecrypt")
    with pytest.raises(KeyProviderError, match=r"Cloud KMS denied Decrypt .*useToDecrypt"):
        _unwrap(_provider(gcp_kms), stanza)


def test_disabled_key_version_is_reported(gcp_kms: LoopbackKms) -> None:
    name = gcp_kms.create_key("app")
    stanza = _wrap(_provider(gcp_kms), f"gcp-kms:{name}")
    gcp_kms.keys[name][0].state = "DISABLED"
    with pytest.raises(KeyProviderError, match="cannot be used now"):
        _unwrap(_provider(gcp_kms), stanza)


def test_unknown_key_fails_with_one_line(gcp_kms: LoopbackKms) -> None:
    with pytest.raises(KeyProviderError, match="does not exist") as info:
        _wrap(_provider(gcp_kms), f"gcp-kms:{PARENT}/cryptoKeys/missing")
    assert "\n" not in str(info.value)


def test_corruption_in_transit_is_detected_by_crc32c(gcp_kms: LoopbackKms) -> None:
    name = gcp_kms.create_key("app")
    gcp_kms.corrupt_responses = True
    with pytest.raises(KeyProviderError, match="corrupted in transit"):
        _wrap(_provider(gcp_kms), f"gcp-kms:{name}")


def test_crc32c_matches_the_castagnoli_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


@pytest.mark.parametrize(
    "key_ref",
    [
        "gcp-kms:app",
        "gcp-kms:projects/p/locations/l/keyRings/r",
        "gcp-kms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
    ],
)
def test_a_key_ref_that_is_not_a_crypto_key_name_is_a_config_error(key_ref: str) -> None:
    with pytest.raises(ConfigError, match="expected gcp-kms:projects/"):
        _wrap(GcpKmsProvider(), key_ref)


def test_unreachable_endpoint_fails_fast() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transport = KeyManagementServiceGrpcTransport(channel=grpc.insecure_channel(f"127.0.0.1:{port}"))
    started = time.monotonic()
    with pytest.raises(KeyProviderError, match="cannot reach Cloud KMS"):
        _wrap(GcpKmsProvider(transport=transport), f"gcp-kms:{PARENT}/cryptoKeys/app")
    assert time.monotonic() - started < 10


def test_provider_refuses_a_stanza_of_another_scheme() -> None:
    stanza = Stanza(scheme="aws-kms", key_ref="aws-kms:alias/x", wrapped_key=b"x")
    with pytest.raises(KeyProviderError, match="aws-kms"):
        _unwrap(GcpKmsProvider(), stanza)


def test_missing_sdk_is_listed_unavailable_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in sys.modules if name == "google.cloud.kms_v1" or name.startswith("google.cloud.kms")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "google.cloud.kms_v1", None)
    entry = Plugins(make_plugin_manager(autoload=False, defaults=(MODULE,))).kms().entry("gcp-kms")
    assert not entry.available
    assert "pip install 'backstream[gcp-kms]'" in (entry.unavailable_reason or "")
    with pytest.raises(MissingDependencyError, match=r"backstream\[gcp-kms\]"):
        _wrap(GcpKmsProvider(), f"gcp-kms:{PARENT}/cryptoKeys/app")


CONTEXTS = st.dictionaries(
    st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,15}", fullmatch=True), st.text(max_size=40), min_size=1, max_size=5
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data_key=st.binary(min_size=32, max_size=32), context=CONTEXTS, other=CONTEXTS)
def test_only_the_wrapping_context_unwraps(
    gcp_kms: LoopbackKms, data_key: bytes, context: dict[str, str], other: dict[str, str]
) -> None:
    name = f"{PARENT}/cryptoKeys/prop"
    if name not in gcp_kms.keys:
        gcp_kms.create_key("prop")
    provider = _provider(gcp_kms)

    async def main() -> None:
        stanza = await provider.wrap(data_key, key_ref=f"gcp-kms:{name}", context=context)
        assert await provider.unwrap(stanza, context=context) == data_key
        if other != context:
            with pytest.raises(KeyProviderError):
                await provider.unwrap(stanza, context=other)

    anyio.run(main)
