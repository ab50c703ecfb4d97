"""The ``local`` key provider: data keys wrapped by a key-encryption key (KEK) from a keystore file.

The keystore (JSON, created by ``backstream keys create``) holds KEKs sealed under a passphrase-derived key.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio.to_thread
from backstream import (
    ConfigError,
    KeyProviderError,
    Register,
    Stanza,
    check_kdf_params,
    derive_passphrase_key,
    encode_context,
    hookimpl,
    new_kdf_params,
    read_passphrase,
)

SCHEME = "local"
KEYSTORE_FORMAT = "backstream-keystore"
KEYSTORE_VERSION = 1
KEK_LABEL = b"backstream keystore v1\x00"
"""Associated data of a sealed KEK, followed by its key id."""
WRAP_LABEL = b"backstream/v1 local\x00"
"""Associated data of a wrapped data key: label, key id, 0x00, canonical object context."""
PASSPHRASE_ENVS = ("BACKSTREAM_KEYSTORE_PASSPHRASE", "BACKSTREAM_PASSPHRASE")
MAX_KEYSTORE_BYTES = 1 << 20

_KEY_ID = re.compile(r"k-[0-9a-f]{16}")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")

OPTIONS = (
    "keystore",
    "passphrase_file",
    "passphrase_env",
    "passphrase_prompt",
    "interactive",
    "kdf",
    "kdf.t",
    "kdf.m",
    "kdf.p",
)
"""``keystore``: keystore paths (``os.pathsep``-separated) tried before the path recorded in a stanza,
e.g. after moving the keystore to a new machine. ``kdf.*``: KDF costs for new keys."""


class LocalKeystoreProvider:
    """Key references: ``local:PATH`` (the keystore's default key) or ``local:PATH#KEY_ID``."""

    scheme = SCHEME
    exclusive = False

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        self._options = dict(options or {})
        self._keks: dict[tuple[str, str], bytes] = {}
        self._passphrase_cache: bytes | None = None

    def configure(self, options: Mapping[str, str]) -> LocalKeystoreProvider:
        return LocalKeystoreProvider({**self._options, **options})

    async def create_key(self, key_ref: str) -> str:
        """Create the keystore (or add a new default key to it); returns ``local:PATH#KEY_ID``."""
        path, _ = _parse_ref(key_ref)
        store = await anyio.to_thread.run_sync(_load, path, True)
        kdf = self._options.get("kdf", "argon2id")
        if kdf != "argon2id":
            raise ConfigError("keystores use argon2id")
        if store is not None:
            # Every key of a keystore shares its passphrase: prove it on the current default key.
            await self._kek(path, store, store["default_key"])
        else:
            store = {"format": KEYSTORE_FORMAT, "version": KEYSTORE_VERSION, "default_key": "", "keys": []}
        overrides = {k.removeprefix("kdf."): v for k, v in self._options.items() if k.startswith("kdf.")}
        params = new_kdf_params("argon2id", overrides)
        passphrase = await self._passphrase(confirm=not store["keys"])
        key_id = "k-" + secrets.token_hex(8)
        kek = os.urandom(32)
        wrap_key = await anyio.to_thread.run_sync(derive_passphrase_key, passphrase, params)
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        nonce = os.urandom(12)
        sealed = ChaCha20Poly1305(wrap_key).encrypt(nonce, kek, KEK_LABEL + key_id.encode())
        store["keys"].append(
            {
                "id": key_id,
                "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "kdf": params,
                "nonce": nonce.hex(),
                "sealed_kek": sealed.hex(),
            }
        )
        store["default_key"] = key_id
        await anyio.to_thread.run_sync(_save, path, store)
        self._keks[(str(path), key_id)] = kek
        return f"{SCHEME}:{path}#{key_id}"

    async def wrap(self, data_key: bytes, *, key_ref: str, context: Mapping[str, str]) -> Stanza:
        path, key_id = _parse_ref(key_ref)
        store = await anyio.to_thread.run_sync(_load, path, False)
        if store is None:
            raise ConfigError(f"no keystore at {path}")
        key_id = key_id or store["default_key"]
        kek = await self._kek(path, store, key_id)
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        nonce = os.urandom(12)
        wrapped = nonce + ChaCha20Poly1305(kek).encrypt(nonce, data_key, _aad(key_id, context))
        return Stanza(
            scheme=SCHEME, key_ref=f"{SCHEME}:{path}#{key_id}", params={"key_id": key_id}, wrapped_key=wrapped
        )

    async def unwrap(self, stanza: Stanza, *, context: Mapping[str, str]) -> bytes:
        key_id = stanza.params.get("key_id", "")
        if not _KEY_ID.fullmatch(key_id) or len(stanza.wrapped_key) != 12 + 48:
            raise KeyProviderError("malformed local stanza")
        candidates = [Path(p).expanduser().absolute() for p in self._options.get("keystore", "").split(os.pathsep) if p]
        try:
            candidates.append(_parse_ref(stanza.key_ref)[0])
        except ConfigError:
            pass
        for path in dict.fromkeys(candidates):
            store = await anyio.to_thread.run_sync(_load, path, True)
            if store is None or not any(key["id"] == key_id for key in store["keys"]):
                continue
            kek = await self._kek(path, store, key_id)
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

            nonce, sealed = stanza.wrapped_key[:12], stanza.wrapped_key[12:]
            try:
                return ChaCha20Poly1305(kek).decrypt(nonce, sealed, _aad(key_id, context))
            except InvalidTag:
                raise KeyProviderError(
                    f"key {key_id} does not open this stanza (wrong object context or modified stanza)"
                ) from None
        tried = ", ".join(str(p) for p in dict.fromkeys(candidates)) or "none"
        raise KeyProviderError(f"key {key_id} is in no keystore (tried: {tried}; pass --keystore PATH)")

    async def _kek(self, path: Path, store: dict[str, Any], key_id: str) -> bytes:
        cached = self._keks.get((str(path), key_id))
        if cached is not None:
            return cached
        entry = next((key for key in store["keys"] if key["id"] == key_id), None)
        if entry is None:
            raise KeyProviderError(f"keystore {path} has no key {key_id}")
        params = check_kdf_params(entry["kdf"], error=ConfigError)
        passphrase = await self._passphrase(confirm=False)
        wrap_key = await anyio.to_thread.run_sync(derive_passphrase_key, passphrase, params)
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        try:
            kek = ChaCha20Poly1305(wrap_key).decrypt(
                bytes.fromhex(entry["nonce"]), bytes.fromhex(entry["sealed_kek"]), KEK_LABEL + key_id.encode()
            )
        except InvalidTag:
            raise KeyProviderError(f"wrong passphrase for keystore {path}") from None
        self._keks[(str(path), key_id)] = kek
        return kek

    async def _passphrase(self, *, confirm: bool) -> bytes:
        if self._passphrase_cache is not None:
            return self._passphrase_cache
        file = self._options.get("passphrase_file") or None
        env = (self._options["passphrase_env"],) if "passphrase_env" in self._options else PASSPHRASE_ENVS
        interactive = self._options.get("interactive")

        def read() -> bytes:
            return read_passphrase(
                file=file,
                env=env,
                prompt=self._options.get("passphrase_prompt", "Keystore passphrase: "),
                confirm=confirm,
                interactive=None if interactive is None else interactive == "yes",
            )

        passphrase = await anyio.to_thread.run_sync(read)
        self._passphrase_cache = passphrase
        return passphrase


def _aad(key_id: str, context: Mapping[str, str]) -> bytes:
    return WRAP_LABEL + key_id.encode() + b"\x00" + encode_context(context)


def _parse_ref(key_ref: str) -> tuple[Path, str]:
    scheme, _, rest = key_ref.partition(":")
    if scheme != SCHEME or not rest:
        raise ConfigError(f"bad local key reference {key_ref!r}: expected local:PATH or local:PATH#KEY_ID")
    path, hash_sign, key_id = rest.rpartition("#")
    if not hash_sign or not _KEY_ID.fullmatch(key_id):
        path, key_id = rest, ""
    return Path(path).expanduser().absolute(), key_id


def _load(path: Path, missing_ok: bool) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_KEYSTORE_BYTES + 1)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise ConfigError(
            f"no keystore at {path} (create one with: backstream keys create --keystore {path})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read keystore {path}: {exc.strerror or exc}") from exc
    try:
        store = json.loads(raw)
        ok = (
            len(raw) <= MAX_KEYSTORE_BYTES
            and store.get("format") == KEYSTORE_FORMAT
            and store.get("version") == KEYSTORE_VERSION
            and isinstance(store.get("keys"), list)
            and all(
                isinstance(key, dict)
                and _KEY_ID.fullmatch(str(key.get("id", "")))
                and isinstance(key.get("kdf"), dict)
                and all(isinstance(v, str) for v in key["kdf"].values())
                and _HEX.fullmatch(str(key.get("nonce", ""))) is not None
                and _HEX.fullmatch(str(key.get("sealed_kek", ""))) is not None
                for key in store["keys"]
            )
            and any(key["id"] == store.get("default_key") for key in store["keys"])
        )
    except (ValueError, AttributeError, TypeError):
        ok = False
    if not ok:
        raise ConfigError(f"{path} is not a valid backstream keystore (version {KEYSTORE_VERSION})")
    result: dict[str, Any] = store
    return result


def _save(path: Path, store: Mapping[str, Any]) -> None:
    data = (json.dumps(store, indent=2) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ConfigError(f"cannot write keystore {path}: {exc.strerror or exc}") from exc


@hookimpl
def backstream_register_kms(register: Register[Any]) -> None:
    register.add(SCHEME, LocalKeystoreProvider())
