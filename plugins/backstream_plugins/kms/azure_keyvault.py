"""The ``azure-keyvault`` key provider: data keys wrapped with RSA-OAEP-256 by an Azure Key Vault key.

Key Vault has no encryption context, so the stanza carries an HMAC binding the context to the data key.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Mapping
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from backstream import ConfigError, KeyProviderError, Register, Stanza, encode_context, hookimpl, missing_dependency
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SCHEME = "azure-keyvault"
EXTRA = "azure-keyvault"
ALGORITHM = "RSA-OAEP-256"
ALG_PARAM = "alg"
KEY_ID_PARAM = "key_id"
"""Stanza parameter: the versioned key id (``.../keys/<name>/<version>``) that wrapped the data key."""
CONTEXT_MAC_PARAM = "context_mac"
"""Stanza parameter: hex HMAC-SHA256 of the canonical context under a key derived from the data key."""
CONTEXT_MAC_INFO = b"backstream azure-keyvault context-mac v1"


def _sdk() -> tuple[Any, Any]:
    try:
        from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
    except ImportError as exc:
        raise missing_dependency("azure.keyvault.keys", EXTRA) from exc
    return CryptographyClient, KeyWrapAlgorithm


def context_mac(data_key: bytes, context: Mapping[str, str]) -> bytes:
    """HMAC-SHA256(HKDF-SHA256(data key, no salt, info=CONTEXT_MAC_INFO), encode_context(context))."""
    mac_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=CONTEXT_MAC_INFO).derive(data_key)
    return hmac.new(mac_key, encode_context(context), hashlib.sha256).digest()


class AzureKeyVaultProvider:
    """Wraps data keys with an RSA key in Azure Key Vault or Managed HSM.

    Key references: ``azure-keyvault:https://<vault>.vault.azure.net/keys/<name>[/<version>]``; the
    stanza records the exact version used, so later key versions never break old objects.
    Credentials come from ``DefaultAzureCredential`` unless ``credential`` is given; ``transport``
    replaces the HTTP transport (tests drive the real SDK through an in-process vault with it).
    """

    scheme = SCHEME

    def __init__(
        self,
        *,
        credential: Any = None,
        transport: Any = None,
        retry_total: int = 2,
        connection_timeout: float = 5.0,
        read_timeout: float = 20.0,
    ) -> None:
        self._credential = credential
        self._transport = transport
        self._retry_total = retry_total
        self._connection_timeout = connection_timeout
        self._read_timeout = read_timeout
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    async def wrap(self, data_key: bytes, *, key_ref: str, context: Mapping[str, str]) -> Stanza:
        """Wrap ``data_key`` with the vault key; bind ``context`` with an HMAC keyed by the data key."""
        url = key_ref.removeprefix(f"{SCHEME}:").strip()
        if not _is_key_url(url):
            raise ConfigError(
                f"bad key reference {key_ref!r}: expected "
                "azure-keyvault:https://<vault>.vault.azure.net/keys/<name>[/<version>]"
            )
        mac = context_mac(data_key, context).hex()
        wrapped, kid = await anyio.to_thread.run_sync(partial(self._wrap, url, data_key))
        return Stanza(
            scheme=SCHEME,
            key_ref=f"{SCHEME}:{url}",
            params={ALG_PARAM: ALGORITHM, KEY_ID_PARAM: kid, CONTEXT_MAC_PARAM: mac},
            wrapped_key=wrapped,
        )

    async def unwrap(self, stanza: Stanza, *, context: Mapping[str, str]) -> bytes:
        """Unwrap with the exact key version that wrapped, then check the context binding."""
        if stanza.scheme != SCHEME:
            raise KeyProviderError(f"the {SCHEME} provider cannot open a {stanza.scheme!r} stanza")
        algorithm = stanza.params.get(ALG_PARAM, ALGORITHM)
        if algorithm != ALGORITHM:
            raise KeyProviderError(f"unsupported {SCHEME} wrap algorithm {algorithm!r} (supported: {ALGORITHM})")
        kid = stanza.params.get(KEY_ID_PARAM) or stanza.key_ref.removeprefix(f"{SCHEME}:")
        try:
            expected = bytes.fromhex(stanza.params.get(CONTEXT_MAC_PARAM, ""))
        except ValueError:
            expected = b""
        if not stanza.wrapped_key or len(expected) != hashlib.sha256().digest_size or not _is_key_url(kid):
            raise KeyProviderError(f"malformed {SCHEME} stanza for {stanza.key_ref!r}")
        data_key = await anyio.to_thread.run_sync(partial(self._unwrap, kid, stanza.wrapped_key))
        if not hmac.compare_digest(context_mac(data_key, context), expected):
            raise KeyProviderError(_wrong_key(kid))
        return data_key

    # --- internals (worker thread) ----------------------------------------------------------

    def _wrap(self, url: str, data_key: bytes) -> tuple[bytes, str]:
        _, algorithms = _sdk()
        client = self._client(url)
        result = _guard("wrap", url, lambda: client.wrap_key(algorithms.rsa_oaep_256, data_key))
        return bytes(result.encrypted_key), str(result.key_id or client.key_id or url)

    def _unwrap(self, kid: str, wrapped: bytes) -> bytes:
        _, algorithms = _sdk()
        client = self._client(kid)
        result = _guard("unwrap", kid, lambda: client.unwrap_key(algorithms.rsa_oaep_256, wrapped))
        return bytes(result.key)

    def _client(self, key_url: str) -> Any:
        client_class, _ = _sdk()
        with self._lock:
            client = self._clients.get(key_url)
            if client is None:
                options: dict[str, Any] = {
                    "retry_total": self._retry_total,
                    "retry_backoff_factor": 0.5,
                    "connection_timeout": self._connection_timeout,
                    "read_timeout": self._read_timeout,
                }
                if self._transport is not None:
                    options["transport"] = self._transport
                client = client_class(key_url, self._get_credential(), **options)
                self._clients[key_url] = client
            return client

    def _get_credential(self) -> Any:
        if self._credential is None:
            try:
                from azure.identity import DefaultAzureCredential
            except ImportError as exc:
                raise missing_dependency("azure.identity", EXTRA) from exc
            self._credential = DefaultAzureCredential()
        return self._credential


def _is_key_url(url: str) -> bool:
    parts = urlsplit(url)
    path = [part for part in parts.path.split("/") if part]
    return parts.scheme == "https" and bool(parts.hostname) and len(path) in (2, 3) and path[0] == "keys"


def _wrong_key(kid: str) -> str:
    return (
        f"the Key Vault key {kid!r} could not unwrap this object's data key for this context "
        "(wrong key or encryption context)"
    )


def _guard(operation: str, key: str, call: Any) -> Any:
    """Run one SDK call; translate azure-core errors into one-line KeyProviderErrors."""
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        return call()
    except ResourceNotFoundError as exc:
        raise KeyProviderError(f"the Key Vault key {key!r} does not exist: {_message(exc)}") from exc
    except ClientAuthenticationError as exc:
        raise KeyProviderError(f"Azure authentication failed for Key Vault key {key!r}: {_message(exc)}") from exc
    except HttpResponseError as exc:
        if exc.status_code == 403:
            raise KeyProviderError(f"Azure Key Vault denied {operation} with key {key!r}: {_message(exc)}") from exc
        if operation == "unwrap" and exc.status_code == 400:
            raise KeyProviderError(_wrong_key(key)) from exc
        raise KeyProviderError(
            f"Azure Key Vault {operation} with key {key!r} failed ({exc.status_code}): {_message(exc)}"
        ) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise KeyProviderError(f"cannot reach Azure Key Vault for key {key!r}: {_message(exc)}") from exc
    except AzureError as exc:
        raise KeyProviderError(f"Azure Key Vault {operation} with key {key!r} failed: {_message(exc)}") from exc
    except ValueError as exc:  # the SDK's own argument and challenge checks
        raise KeyProviderError(f"Azure Key Vault {operation} with key {key!r} failed: {_message(exc)}") from exc


def _message(exc: Exception) -> str:
    error = getattr(exc, "error", None)
    text = str(getattr(error, "message", None) or getattr(exc, "message", None) or exc)
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


@hookimpl
def backstream_register_kms(register: Register[Any]) -> None:
    register.add(SCHEME, AzureKeyVaultProvider(), requires=("azure.keyvault.keys", "azure.identity"), extra=EXTRA)
