"""The ``gcp-kms`` key provider: data keys wrapped by Google Cloud KMS ``Encrypt`` / ``Decrypt``.

The canonical object context is the additional authenticated data; every call is CRC32C-checked end to end.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Mapping
from functools import partial
from typing import Any

import anyio.to_thread
from backstream import ConfigError, KeyProviderError, Register, Stanza, encode_context, hookimpl, missing_dependency

SCHEME = "gcp-kms"
EXTRA = "gcp-kms"
KEY_ID_PARAM = "key_id"
"""Stanza parameter: the CryptoKeyVersion that encrypted the data key (informational: Decrypt finds
the version from the ciphertext; the audit log records it)."""

_KEY_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")


def _sdk() -> Any:
    try:
        return importlib.import_module("google.cloud.kms_v1")
    except ImportError as exc:
        raise missing_dependency("google.cloud.kms_v1", EXTRA) from exc


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as Cloud KMS uses for its end-to-end integrity fields."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


class GcpKmsProvider:
    """Wraps data keys with a Cloud KMS symmetric CryptoKey (purpose ENCRYPT_DECRYPT).

    Key references: ``gcp-kms:projects/<p>/locations/<l>/keyRings/<r>/cryptoKeys/<k>`` (the CryptoKey
    resource name; Cloud KMS encrypts with its primary version). Credentials are Application Default
    Credentials unless ``credentials`` is given; ``transport`` and ``api_endpoint`` are passed to the
    client (tests drive the real client over a loopback gRPC channel with ``transport``).
    """

    scheme = SCHEME

    def __init__(
        self,
        *,
        credentials: Any = None,
        transport: Any = None,
        api_endpoint: str | None = None,
        timeout: float = 10.0,
        retry_deadline: float = 5.0,
    ) -> None:
        self._credentials = credentials
        self._transport = transport
        self._api_endpoint = api_endpoint
        self._timeout = timeout
        self._retry_deadline = retry_deadline
        self._client_instance: Any = None
        self._lock = threading.Lock()

    async def wrap(self, data_key: bytes, *, key_ref: str, context: Mapping[str, str]) -> Stanza:
        """Cloud KMS ``Encrypt`` of ``data_key`` with the canonical context as AAD."""
        name = key_ref.removeprefix(f"{SCHEME}:").strip()
        if not _KEY_NAME.match(name):
            raise ConfigError(
                f"bad key reference {key_ref!r}: expected "
                "gcp-kms:projects/<project>/locations/<location>/keyRings/<ring>/cryptoKeys/<key>"
            )
        aad = encode_context(context)
        ciphertext, version = await anyio.to_thread.run_sync(partial(self._encrypt, name, data_key, aad))
        return Stanza(scheme=SCHEME, key_ref=f"{SCHEME}:{name}", params={KEY_ID_PARAM: version}, wrapped_key=ciphertext)

    async def unwrap(self, stanza: Stanza, *, context: Mapping[str, str]) -> bytes:
        """Cloud KMS ``Decrypt`` with the same AAD; the ciphertext names the key version itself."""
        if stanza.scheme != SCHEME:
            raise KeyProviderError(f"the {SCHEME} provider cannot open a {stanza.scheme!r} stanza")
        name = stanza.key_ref.removeprefix(f"{SCHEME}:")
        if not stanza.wrapped_key or not _KEY_NAME.match(name):
            raise KeyProviderError(f"malformed {SCHEME} stanza for {stanza.key_ref!r}")
        aad = encode_context(context)
        return await anyio.to_thread.run_sync(partial(self._decrypt, name, stanza.wrapped_key, aad))

    # --- internals (worker thread) ----------------------------------------------------------

    def _encrypt(self, name: str, plaintext: bytes, aad: bytes) -> tuple[bytes, str]:
        request = {
            "name": name,
            "plaintext": plaintext,
            "additional_authenticated_data": aad,
            "plaintext_crc32c": crc32c(plaintext),
            "additional_authenticated_data_crc32c": crc32c(aad),
        }
        response = self._call("Encrypt", name, lambda client, options: client.encrypt(request=request, **options))
        ciphertext = bytes(response.ciphertext)
        if not (
            response.verified_plaintext_crc32c
            and response.verified_additional_authenticated_data_crc32c
            and response.ciphertext_crc32c == crc32c(ciphertext)
        ):
            raise KeyProviderError(
                f"Cloud KMS Encrypt with key {name!r}: the request or response was corrupted in transit"
            )
        return ciphertext, str(response.name)

    def _decrypt(self, name: str, ciphertext: bytes, aad: bytes) -> bytes:
        request = {
            "name": name,
            "ciphertext": ciphertext,
            "additional_authenticated_data": aad,
            "ciphertext_crc32c": crc32c(ciphertext),
            "additional_authenticated_data_crc32c": crc32c(aad),
        }
        response = self._call("Decrypt", name, lambda client, options: client.decrypt(request=request, **options))
        plaintext = bytes(response.plaintext)
        if response.plaintext_crc32c != crc32c(plaintext):
            raise KeyProviderError(f"Cloud KMS Decrypt with key {name!r}: the response was corrupted in transit")
        return plaintext

    def _call(self, operation: str, name: str, call: Any) -> Any:
        from google.api_core import exceptions, retry
        from google.auth.exceptions import GoogleAuthError

        options = {
            "retry": retry.Retry(
                initial=0.25,
                maximum=2.0,
                multiplier=2.0,
                timeout=self._retry_deadline,
                predicate=retry.if_exception_type(exceptions.ServiceUnavailable, exceptions.DeadlineExceeded),
            ),
            "timeout": self._timeout,
        }
        try:
            return call(self._client(), options)
        except exceptions.InvalidArgument as exc:
            if operation == "Decrypt":
                raise KeyProviderError(
                    f"the Cloud KMS key {name!r} could not decrypt this object's data key "
                    "(wrong key or encryption context)"
                ) from exc
            raise KeyProviderError(f"Cloud KMS {operation} with key {name!r} was refused: {_message(exc)}") from exc
        except exceptions.PermissionDenied as exc:
            raise KeyProviderError(f"Cloud KMS denied {operation} with key {name!r}: {_message(exc)}") from exc
        except exceptions.NotFound as exc:
            raise KeyProviderError(f"the Cloud KMS key {name!r} does not exist: {_message(exc)}") from exc
        except exceptions.FailedPrecondition as exc:
            raise KeyProviderError(f"the Cloud KMS key {name!r} cannot be used now: {_message(exc)}") from exc
        except exceptions.Unauthenticated as exc:
            raise KeyProviderError(f"Cloud KMS rejected the credentials for key {name!r}: {_message(exc)}") from exc
        except (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded, exceptions.RetryError) as exc:
            raise KeyProviderError(f"cannot reach Cloud KMS for key {name!r}: {_message(exc)}") from exc
        except exceptions.GoogleAPIError as exc:
            raise KeyProviderError(f"Cloud KMS {operation} with key {name!r} failed: {_message(exc)}") from exc
        except GoogleAuthError as exc:
            raise KeyProviderError(
                f"no usable Google Cloud credentials for key {name!r} (set GOOGLE_APPLICATION_CREDENTIALS "
                f"or run 'gcloud auth application-default login'): {_message(exc)}"
            ) from exc

    def _client(self) -> Any:
        kms_v1 = _sdk()
        with self._lock:
            if self._client_instance is None:
                options = {"api_endpoint": self._api_endpoint} if self._api_endpoint else None
                self._client_instance = kms_v1.KeyManagementServiceClient(
                    credentials=self._credentials, transport=self._transport, client_options=options
                )
            return self._client_instance


def _message(exc: Exception) -> str:
    text = str(getattr(exc, "message", None) or exc)
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


@hookimpl
def backstream_register_kms(register: Register[Any]) -> None:
    register.add(SCHEME, GcpKmsProvider(), requires=("google.cloud.kms_v1",), extra=EXTRA)
