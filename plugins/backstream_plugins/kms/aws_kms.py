"""The ``aws-kms`` key provider: data keys wrapped by AWS KMS ``Encrypt`` / ``Decrypt`` under a KMS key.

The object context (backup id, ...) is the KMS encryption context; boto3 runs in worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from functools import partial
from typing import Any

import anyio.to_thread
from backstream import ConfigError, KeyProviderError, Register, Stanza, hookimpl, missing_dependency

SCHEME = "aws-kms"
EXTRA = "aws-kms"
KEY_ID_PARAM = "key_id"
"""Stanza parameter: the ARN of the KMS key that wrapped the data key, as KMS reported it."""
OPTIONS = ("aws_region", "aws_profile", "aws_endpoint_url")
"""Per-run options (``configure``); each overrides the standard AWS configuration."""

_WRONG_KEY = frozenset({"IncorrectKeyException", "InvalidCiphertextException"})
_KEY_STATE = frozenset({"DisabledException", "KMSInvalidStateException", "KeyUnavailableException"})


def _boto3() -> Any:
    try:
        import boto3
    except ImportError as exc:
        raise missing_dependency("boto3", EXTRA) from exc
    return boto3


class AwsKmsProvider:
    """Wraps data keys with a symmetric AWS KMS key.

    Key references: ``aws-kms:<key id | key ARN | alias/NAME | alias ARN>``. Region, endpoint
    (``AWS_ENDPOINT_URL_KMS`` / ``AWS_ENDPOINT_URL``) and credentials come from the standard AWS
    configuration unless given here; a key ARN's own region wins over the configured one.
    Credentials are never stored in a stanza.
    """

    scheme = SCHEME

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        max_attempts: int = 3,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
    ) -> None:
        self._settings: dict[str, Any] = {
            "region": region,
            "endpoint_url": endpoint_url,
            "profile": profile,
            "max_attempts": max_attempts,
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
        }
        self._clients: dict[str | None, Any] = {}
        self._lock = threading.Lock()

    def configure(self, options: Mapping[str, str]) -> AwsKmsProvider:
        """A copy using ``aws_region``, ``aws_profile``, ``aws_endpoint_url`` from ``options``."""
        settings = dict(self._settings)
        for option in OPTIONS:
            if options.get(option):
                settings[option.removeprefix("aws_")] = options[option]
        return AwsKmsProvider(**settings)

    async def wrap(self, data_key: bytes, *, key_ref: str, context: Mapping[str, str]) -> Stanza:
        """KMS ``Encrypt`` of ``data_key`` with ``context`` as the encryption context."""
        key = _key_of(key_ref)
        response = await anyio.to_thread.run_sync(
            partial(self._call, "Encrypt", key, KeyId=key, Plaintext=data_key, EncryptionContext=dict(context))
        )
        return Stanza(
            scheme=SCHEME,
            key_ref=f"{SCHEME}:{key}",
            params={KEY_ID_PARAM: str(response.get("KeyId") or key)},
            wrapped_key=bytes(response["CiphertextBlob"]),
        )

    async def unwrap(self, stanza: Stanza, *, context: Mapping[str, str]) -> bytes:
        """KMS ``Decrypt`` of the stanza's wrapped key, pinned to the key that wrapped it."""
        if stanza.scheme != SCHEME:
            raise KeyProviderError(f"the {SCHEME} provider cannot open a {stanza.scheme!r} stanza")
        key = stanza.params.get(KEY_ID_PARAM) or stanza.key_ref.removeprefix(f"{SCHEME}:")
        if not key or not stanza.wrapped_key:
            raise KeyProviderError(f"malformed {SCHEME} stanza for {stanza.key_ref!r}")
        response = await anyio.to_thread.run_sync(
            partial(
                self._call,
                "Decrypt",
                key,
                KeyId=key,
                CiphertextBlob=stanza.wrapped_key,
                EncryptionContext=dict(context),
            )
        )
        return bytes(response["Plaintext"])

    # --- internals (worker thread) ----------------------------------------------------------

    def _call(self, operation: str, key: str, **kwargs: Any) -> dict[str, Any]:
        boto3 = _boto3()
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

        try:
            client = self._client(boto3, _arn_region(key))
            method = client.encrypt if operation == "Encrypt" else client.decrypt
            response: dict[str, Any] = method(**kwargs)
            return response
        except ClientError as exc:
            raise _client_error(operation, key, exc) from exc
        except NoCredentialsError as exc:
            raise KeyProviderError(
                f"AWS KMS {operation} with key {key!r}: no AWS credentials found "
                "(set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use an instance role)"
            ) from exc
        except NoRegionError as exc:
            raise KeyProviderError(
                f"AWS KMS {operation} with key {key!r}: no AWS region configured (set AWS_REGION or use a key ARN)"
            ) from exc
        except BotoCoreError as exc:
            raise KeyProviderError(f"AWS KMS {operation} with key {key!r} failed: {_one_line(str(exc))}") from exc

    def _client(self, boto3: Any, arn_region: str | None) -> Any:
        settings = self._settings
        region = arn_region or settings["region"]
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                from botocore.config import Config

                config = Config(
                    connect_timeout=settings["connect_timeout"],
                    read_timeout=settings["read_timeout"],
                    retries={"max_attempts": settings["max_attempts"], "mode": "standard"},
                )
                session = boto3.session.Session(profile_name=settings["profile"])
                client = session.client("kms", region_name=region, endpoint_url=settings["endpoint_url"], config=config)
                self._clients[region] = client
            return client


def _key_of(key_ref: str) -> str:
    """The KMS key id/ARN/alias of ``aws-kms:KEY`` (the bare ``KEY`` is accepted too)."""
    key = key_ref.removeprefix(f"{SCHEME}:").strip()
    if not key:
        raise ConfigError(f"bad key reference {key_ref!r}: expected aws-kms:<key id, key ARN or alias/NAME>")
    return key


def _arn_region(key: str) -> str | None:
    """The region of a KMS key or alias ARN (``arn:aws:kms:<region>:<account>:key/...``), else None."""
    parts = key.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and parts[2] == "kms" and parts[3]:
        return parts[3]
    return None


def _client_error(operation: str, key: str, exc: Any) -> KeyProviderError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = _one_line(str(error.get("Message", "")))
    if operation == "Decrypt" and code in _WRONG_KEY:
        return KeyProviderError(
            f"the KMS key {key!r} could not decrypt this object's data key (wrong key or encryption context)"
        )
    if code in {"AccessDeniedException", "AccessDenied"}:
        hint = " (or the data key was wrapped under another KMS key)" if operation == "Decrypt" else ""
        return KeyProviderError(f"AWS KMS denied {operation} with key {key!r}{hint}: {message}")
    if code == "NotFoundException":
        return KeyProviderError(f"the KMS key {key!r} does not exist in this account and region: {message}")
    if code in _KEY_STATE:
        return KeyProviderError(f"the KMS key {key!r} cannot be used now ({code}): {message}")
    return KeyProviderError(f"AWS KMS {operation} with key {key!r} failed ({code}): {message}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


@hookimpl
def backstream_register_kms(register: Register[Any]) -> None:
    register.add(SCHEME, AwsKmsProvider(), requires=("boto3",), extra=EXTRA)
