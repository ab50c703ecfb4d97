"""The ``aws-kms`` key provider against a real moto KMS server on loopback (tests/fixtures/s3.py).

Covers the round trip, the object format, key pinning, wrong key, wrong context, unreachable endpoint,
error translation and missing boto3.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import anyio
import pytest
from backstream import ConfigError, KeyProviderError, MissingDependencyError, Plugins, Stanza, make_plugin_manager
from backstream.plugins import DEFAULT_PLUGINS
from backstream_plugins.kms.aws_kms import KEY_ID_PARAM, AwsKmsProvider, _client_error
from botocore.exceptions import ClientError
from fixtures.kms_format import RoundTrip
from fixtures.s3 import MotoServer, closed_port
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MODULE = "backstream_plugins.kms.aws_kms"
CONTEXT = {"backup-id": "20240601T120000Z-9f2c", "database": "app", "codec": "zstd"}
DATA_KEY = bytes(range(32))


@pytest.fixture
def kms(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 KMS client on the moto server; the standard AWS variables point there too."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", aws_env.endpoint_url)
    return aws_env.client("kms")


def _new_key(kms: Any) -> str:
    """A fresh symmetric KMS key; returns its ARN."""
    return str(kms.create_key(Description="backstream test")["KeyMetadata"]["Arn"])


def _key_id(arn: str) -> str:
    return arn.rsplit("/", 1)[1]


def _wrap(provider: AwsKmsProvider, key_ref: str, context: dict[str, str] = CONTEXT) -> Stanza:
    return anyio.run(lambda: provider.wrap(DATA_KEY, key_ref=key_ref, context=context))


def _unwrap(provider: AwsKmsProvider, stanza: Stanza, context: dict[str, str] = CONTEXT) -> bytes:
    return anyio.run(lambda: provider.unwrap(stanza, context=context))


def test_provider_is_a_default_plugin_registered_as_aws_kms() -> None:
    assert MODULE in DEFAULT_PLUGINS
    entry = Plugins(make_plugin_manager(autoload=False, defaults=(MODULE,))).kms().entry("aws-kms")
    assert entry.available
    assert isinstance(entry.factory, AwsKmsProvider)


def test_registered_provider_round_trips_a_data_key_through_kms(kms: Any) -> None:
    provider = Plugins(make_plugin_manager(autoload=False, defaults=(MODULE,))).kms().get("aws-kms")
    stanza = _wrap(provider, f"aws-kms:{_key_id(_new_key(kms))}")
    assert _unwrap(provider, stanza) == DATA_KEY


def test_an_object_encrypted_for_kms_decrypts_through_the_format(kms: Any, format_round_trip: RoundTrip) -> None:
    data = bytes(range(256)) * 1000
    key_ref = f"aws-kms:{_new_key(kms)}"
    plaintext, header = anyio.run(format_round_trip, {"aws-kms": AwsKmsProvider()}, [key_ref], CONTEXT, data)
    assert plaintext == data
    assert [stanza.key_ref for stanza in header.stanzas] == [key_ref]


def test_stanza_holds_the_kms_ciphertext_and_the_key_arn_never_the_data_key(kms: Any) -> None:
    arn = _new_key(kms)
    stanza = _wrap(AwsKmsProvider(), f"aws-kms:{_key_id(arn)}")
    assert stanza.scheme == "aws-kms"
    assert stanza.key_ref == f"aws-kms:{_key_id(arn)}"
    assert stanza.params[KEY_ID_PARAM] == arn
    assert DATA_KEY not in stanza.wrapped_key
    plaintext = kms.decrypt(CiphertextBlob=stanza.wrapped_key, EncryptionContext=CONTEXT)["Plaintext"]
    assert plaintext == DATA_KEY


def test_unwrap_uses_the_key_that_wrapped_even_after_the_alias_moves(kms: Any) -> None:
    first, second = _new_key(kms), _new_key(kms)
    alias = f"alias/backstream-{_key_id(first)[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=_key_id(first))
    provider = AwsKmsProvider()
    stanza = _wrap(provider, f"aws-kms:{alias}")
    kms.update_alias(AliasName=alias, TargetKeyId=_key_id(second))
    assert stanza.params[KEY_ID_PARAM] == first
    assert _unwrap(provider, stanza) == DATA_KEY


def test_key_arn_region_wins_over_the_configured_region(kms: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    arn = _new_key(kms)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    provider = AwsKmsProvider()
    assert _unwrap(provider, _wrap(provider, f"aws-kms:{arn}")) == DATA_KEY


def test_configure_sets_region_and_endpoint_for_one_run(
    kms: Any, aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id = _key_id(_new_key(kms))
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    provider = AwsKmsProvider().configure(
        {"aws_region": "us-east-1", "aws_endpoint_url": aws_env.endpoint_url, "passphrase_file": "ignored"}
    )
    assert _unwrap(provider, _wrap(provider, f"aws-kms:{key_id}")) == DATA_KEY


def test_another_kms_key_cannot_unwrap(kms: Any) -> None:
    provider = AwsKmsProvider()
    stanza = _wrap(provider, f"aws-kms:{_new_key(kms)}")
    other = _new_key(kms)
    forged = Stanza("aws-kms", f"aws-kms:{other}", {KEY_ID_PARAM: other}, stanza.wrapped_key)
    with pytest.raises(KeyProviderError, match=r"wrapped under another KMS key|wrong key or encryption context"):
        _unwrap(provider, forged)


def test_wrong_context_cannot_unwrap(kms: Any) -> None:
    provider = AwsKmsProvider()
    stanza = _wrap(provider, f"aws-kms:{_new_key(kms)}")
    with pytest.raises(KeyProviderError, match=r"wrong key or encryption context"):
        _unwrap(provider, stanza, {**CONTEXT, "backup-id": "20240602T120000Z-0000"})


def test_tampered_wrapped_key_cannot_unwrap(kms: Any) -> None:
    provider = AwsKmsProvider()
    stanza = _wrap(provider, f"aws-kms:{_new_key(kms)}")
    blob = bytearray(stanza.wrapped_key)
    blob[-1] ^= 0x01
    with pytest.raises(KeyProviderError, match=r"wrong key or encryption context"):
        _unwrap(provider, Stanza(stanza.scheme, stanza.key_ref, stanza.params, bytes(blob)))


def test_unknown_key_fails_to_wrap_with_one_line(kms: Any) -> None:
    with pytest.raises(KeyProviderError, match="alias/does-not-exist") as info:
        _wrap(AwsKmsProvider(), "aws-kms:alias/does-not-exist")
    assert "\n" not in str(info.value)


def test_an_empty_key_reference_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="aws-kms:<key id"):
        _wrap(AwsKmsProvider(), "aws-kms:")


@pytest.mark.parametrize(
    ("operation", "code", "expected"),
    [
        ("Decrypt", "IncorrectKeyException", "could not decrypt this object's data key"),
        ("Decrypt", "InvalidCiphertextException", "wrong key or encryption context"),
        ("Encrypt", "AccessDeniedException", "AWS KMS denied Encrypt"),
        ("Encrypt", "KMSInvalidStateException", "cannot be used now"),
        ("Encrypt", "DisabledException", "cannot be used now"),
        ("Encrypt", "NotFoundException", "does not exist"),
        ("Encrypt", "ThrottlingException", "failed (ThrottlingException)"),
    ],
)
def test_kms_error_codes_translate_to_one_clear_line(operation: str, code: str, expected: str) -> None:
    """Key states moto does not model (disabled, pending deletion, real IncorrectKey) map by code."""
    exc = ClientError({"Error": {"Code": code, "Message": "first line\nsecond line"}}, operation)
    error = _client_error(operation, "alias/backups", exc)
    assert isinstance(error, KeyProviderError)
    assert expected in str(error)
    assert "alias/backups" in str(error)
    assert "\n" not in str(error)


def test_unreachable_endpoint_fails_fast(kms: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    with pytest.raises(KeyProviderError, match="Could not connect"):
        _wrap(AwsKmsProvider(), "aws-kms:alias/any")
    assert time.monotonic() - started < 10


def test_missing_credentials_fail_with_a_hint(kms: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(KeyProviderError, match="no AWS credentials"):
        _wrap(AwsKmsProvider(), "aws-kms:alias/any")


def test_provider_refuses_a_stanza_of_another_scheme() -> None:
    with pytest.raises(KeyProviderError, match="gcp-kms"):
        _unwrap(AwsKmsProvider(), Stanza(scheme="gcp-kms", key_ref="gcp-kms:projects/p", wrapped_key=b"x"))


def test_missing_boto3_is_listed_unavailable_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    entry = Plugins(make_plugin_manager(autoload=False, defaults=(MODULE,))).kms().entry("aws-kms")
    assert not entry.available
    assert "pip install 'backstream[aws-kms]'" in (entry.unavailable_reason or "")
    with pytest.raises(MissingDependencyError, match=r"backstream\[aws-kms\]"):
        _wrap(AwsKmsProvider(), "aws-kms:alias/any")


@pytest.fixture
def kms_key(kms: Any) -> str:
    """One fresh KMS key (its ARN) for a whole test function, hypothesis examples included."""
    return _new_key(kms)


@pytest.fixture
def shared_provider(kms: Any) -> AwsKmsProvider:
    """One provider (one cached boto3 client) for a whole test function."""
    return AwsKmsProvider()


CONTEXTS = st.dictionaries(
    st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,15}", fullmatch=True), st.text(max_size=40), min_size=1, max_size=5
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data_key=st.binary(min_size=32, max_size=32), context=CONTEXTS, other=CONTEXTS)
def test_only_the_wrapping_context_unwraps(
    kms_key: str, shared_provider: AwsKmsProvider, data_key: bytes, context: dict[str, str], other: dict[str, str]
) -> None:
    provider = shared_provider

    async def main() -> None:
        stanza = await provider.wrap(data_key, key_ref=f"aws-kms:{kms_key}", context=context)
        assert await provider.unwrap(stanza, context=context) == data_key
        if other != context:
            with pytest.raises(KeyProviderError):
                await provider.unwrap(stanza, context=other)

    anyio.run(main)
