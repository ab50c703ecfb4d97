"""The ``local`` key provider: data keys wrapped by a key from a keystore file, a symmetric KEK or an X25519 key pair.

The keystore (JSON, ``backstream keys create``) seals KEKs and X25519 private keys under a passphrase-derived key;
an X25519 key's public half is in the clear, so wrapping to it needs no passphrase (docs/keys.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import stat
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
X25519_INFO = b"backstream/v1 local x25519\x00"
"""HKDF-SHA256 info for the wrap key of an X25519 stanza, followed by its key id."""
ZERO_NONCE = bytes(12)
"""The nonce of an X25519 wrap: every wrap key is new (a new ephemeral key pair per stanza)."""
KINDS = ("symmetric", "x25519")
"""Key kinds ``keys create`` makes: a 32-byte KEK (ids ``k-``), or an X25519 key pair (ids ``x-``,
the first 16 bytes of the public key's sha256, so a key id pins its public key)."""
PASSPHRASE_ENVS = ("BACKSTREAM_KEYSTORE_PASSPHRASE", "BACKSTREAM_PASSPHRASE")
MAX_KEYSTORE_BYTES = 1 << 20

_KEY_ID = re.compile(r"k-[0-9a-f]{16}|x-[0-9a-f]{32}")
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
    "key_kind",
)
"""``keystore``: keystore paths (``os.pathsep``-separated) tried before the path recorded in a stanza,
e.g. after moving the keystore to a new machine. ``kdf.*``: KDF costs for new keys. ``key_kind``:
what ``create_key`` makes, ``symmetric`` (default) or ``x25519``."""


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
        kind = self._options.get("key_kind", "symmetric")
        if kind not in KINDS:
            raise ConfigError(f"unknown key kind {kind!r} (known: {', '.join(KINDS)})")
        store = await anyio.to_thread.run_sync(_load, path, True)
        kdf = self._options.get("kdf", "argon2id")
        if kdf != "argon2id":
            raise ConfigError("keystores use argon2id")
        if store is not None:
            if not _has_secret(_entry(path, store, store["default_key"])):
                raise ConfigError(
                    f"{path} holds public keys only (an export): create keys in the full keystore and export again"
                )
            # Every key of a keystore shares its passphrase: prove it on the current default key.
            await self._secret(path, store, store["default_key"])
        else:
            store = {"format": KEYSTORE_FORMAT, "version": KEYSTORE_VERSION, "default_key": "", "keys": []}
        overrides = {k.removeprefix("kdf."): v for k, v in self._options.items() if k.startswith("kdf.")}
        params = new_kdf_params("argon2id", overrides)
        passphrase = await self._passphrase(confirm=not store["keys"])
        entry: dict[str, Any] = {
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        }
        if kind == "x25519":
            from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

            private = X25519PrivateKey.generate()
            secret, public = _raw(private), _raw(private.public_key())
            key_id = _x25519_id(public)
            entry.update(id=key_id, kind="x25519", public=public.hex())
            sealed_field = "sealed_private"
        else:
            key_id = "k-" + secrets.token_hex(8)
            secret = os.urandom(32)
            entry.update(id=key_id)
            sealed_field = "sealed_kek"
        wrap_key = await anyio.to_thread.run_sync(derive_passphrase_key, passphrase, params)
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        nonce = os.urandom(12)
        sealed = ChaCha20Poly1305(wrap_key).encrypt(nonce, secret, KEK_LABEL + key_id.encode())
        entry.update({"kdf": params, "nonce": nonce.hex(), sealed_field: sealed.hex()})
        store["keys"].append(entry)
        store["default_key"] = key_id
        await anyio.to_thread.run_sync(_save, path, store)
        self._keks[(str(path), key_id)] = secret
        return f"{SCHEME}:{path}#{key_id}"

    async def export_public(self, key_ref: str, out: str, *, force: bool = False) -> str:
        """Write to ``out`` a keystore with the public halves of the X25519 keys of ``key_ref``'s
        keystore: enough to make backups, not to read them. Its default key is the one named in
        ``key_ref`` (``#x-...``), else the keystore's default, which must then be an X25519 key.
        ``out`` must not exist, unless ``force`` and it is itself a public export (a keystore
        holding private keys is never overwritten). Returns ``local:OUT#KEY_ID``."""
        path, key_id = _parse_ref(key_ref)
        target = Path(out).expanduser().absolute()
        store = await anyio.to_thread.run_sync(_load, path, False)
        assert store is not None
        default = key_id or store["default_key"]
        _entry(path, store, default)
        if not default.startswith("x-"):
            raise ConfigError(
                f"the default key of {path} ({default}) is symmetric and cannot be exported: name an X25519 "
                "key (local:PATH#x-...) or create one (backstream keys create --kind x25519)"
            )
        await anyio.to_thread.run_sync(_check_export_target, path, target, force)
        keys = [
            {"id": key["id"], "created_at": key.get("created_at", ""), "kind": "x25519", "public": key["public"]}
            for key in store["keys"]
            if key["id"].startswith("x-")
        ]
        public = {"format": KEYSTORE_FORMAT, "version": KEYSTORE_VERSION, "default_key": default, "keys": keys}
        await anyio.to_thread.run_sync(_save, target, public)
        return f"{SCHEME}:{target}#{default}"

    async def wrap(self, data_key: bytes, *, key_ref: str, context: Mapping[str, str]) -> Stanza:
        path, key_id = _parse_ref(key_ref)
        store = await anyio.to_thread.run_sync(_load, path, False)
        if store is None:
            raise ConfigError(f"no keystore at {path}")
        key_id = key_id or store["default_key"]
        entry = _entry(path, store, key_id)
        if key_id.startswith("x-"):  # a public key: no passphrase, no KDF
            wrapped = _x25519_wrap(bytes.fromhex(entry["public"]), key_id, data_key, context)
        else:
            kek = await self._secret(path, store, key_id)
            from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

            nonce = os.urandom(12)
            wrapped = nonce + ChaCha20Poly1305(kek).encrypt(nonce, data_key, _aad(key_id, context))
        return Stanza(
            scheme=SCHEME, key_ref=f"{SCHEME}:{path}#{key_id}", params={"key_id": key_id}, wrapped_key=wrapped
        )

    async def unwrap(self, stanza: Stanza, *, context: Mapping[str, str]) -> bytes:
        key_id = stanza.params.get("key_id", "")
        size = (32 if key_id.startswith("x-") else 12) + 48
        if not _KEY_ID.fullmatch(key_id) or len(stanza.wrapped_key) != size:
            raise KeyProviderError("malformed local stanza")
        candidates = [Path(p).expanduser().absolute() for p in self._options.get("keystore", "").split(os.pathsep) if p]
        try:
            candidates.append(_parse_ref(stanza.key_ref)[0])
        except ConfigError:
            pass
        public_only: list[str] = []
        for path in dict.fromkeys(candidates):
            store = await anyio.to_thread.run_sync(_load, path, True)
            entry = _find(store, key_id)
            if store is None or entry is None:
                continue
            if not _has_secret(entry):
                public_only.append(str(path))
                continue
            secret = await self._secret(path, store, key_id)
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

            if key_id.startswith("x-"):
                wrap_key = _x25519_unwrap_key(secret, stanza.wrapped_key[:32], key_id)
                nonce, sealed = ZERO_NONCE, stanza.wrapped_key[32:]
            else:
                wrap_key, nonce, sealed = secret, stanza.wrapped_key[:12], stanza.wrapped_key[12:]
            try:
                return ChaCha20Poly1305(wrap_key).decrypt(nonce, sealed, _aad(key_id, context))
            except InvalidTag:
                raise KeyProviderError(
                    f"key {key_id} does not open this stanza (wrong object context or modified stanza)"
                ) from None
        tried = ", ".join(str(p) for p in dict.fromkeys(candidates)) or "none"
        if public_only:
            raise KeyProviderError(
                f"key {key_id} is only a public key in {', '.join(public_only)}: decrypting needs the keystore "
                "that holds its private half (pass --keystore PATH)"
            )
        raise KeyProviderError(f"key {key_id} is in no keystore (tried: {tried}; pass --keystore PATH)")

    async def _secret(self, path: Path, store: dict[str, Any], key_id: str) -> bytes:
        """A key's sealed secret (a KEK, or an X25519 private key), unsealed with the passphrase."""
        cached = self._keks.get((str(path), key_id))
        if cached is not None:
            return cached
        entry = _entry(path, store, key_id)
        if not _has_secret(entry):
            raise KeyProviderError(f"keystore {path} holds only the public half of key {key_id}")
        params = check_kdf_params(entry["kdf"], error=ConfigError)
        passphrase = await self._passphrase(confirm=False)
        wrap_key = await anyio.to_thread.run_sync(derive_passphrase_key, passphrase, params)
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        sealed = entry["sealed_private"] if key_id.startswith("x-") else entry["sealed_kek"]
        try:
            secret = ChaCha20Poly1305(wrap_key).decrypt(
                bytes.fromhex(entry["nonce"]), bytes.fromhex(sealed), KEK_LABEL + key_id.encode()
            )
        except InvalidTag:
            raise KeyProviderError(f"wrong passphrase for keystore {path}") from None
        if key_id.startswith("x-") and _x25519_id(_public_of(secret)) != key_id:
            raise KeyProviderError(f"keystore {path}: the private key of {key_id} does not belong to that key id")
        self._keks[(str(path), key_id)] = secret
        return secret

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


def _find(store: Mapping[str, Any] | None, key_id: str) -> dict[str, Any] | None:
    return next((key for key in store["keys"] if key["id"] == key_id), None) if store is not None else None


def _entry(path: Path, store: Mapping[str, Any], key_id: str) -> dict[str, Any]:
    entry = _find(store, key_id)
    if entry is None:
        raise KeyProviderError(f"keystore {path} has no key {key_id}")
    return entry


def _has_secret(entry: Mapping[str, Any]) -> bool:
    """False for the public half of an X25519 key alone (an exported keystore)."""
    return "sealed_kek" in entry or "sealed_private" in entry


def _raw(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    if hasattr(key, "private_bytes"):
        raw: bytes = key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return raw
    public: bytes = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return public


def _public_of(private: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return _raw(X25519PrivateKey.from_private_bytes(private).public_key())


def _x25519_id(public: bytes) -> str:
    """An X25519 key's id: ``x-`` and the first 16 bytes of sha256(public key), in hex: pinning it
    pins the public key (a second key with the same id costs ~2^128 hashes)."""
    return "x-" + hashlib.sha256(public).hexdigest()[:32]


def _x25519_key(shared: bytes, ephemeral: bytes, recipient: bytes, key_id: str) -> bytes:
    """The wrap key: HKDF-SHA256(shared secret, salt = ephemeral || recipient public key, info)."""
    if shared == bytes(32):
        raise KeyProviderError("X25519 gave an all-zero shared secret (a low-order public key): refusing")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=X25519_INFO + key_id.encode()
    ).derive(shared)


def _x25519_wrap(recipient: bytes, key_id: str, data_key: bytes, context: Mapping[str, str]) -> bytes:
    """``ephemeral public key (32) || ChaCha20-Poly1305(wrap key, zero nonce, data key, aad)``."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = _raw(ephemeral.public_key())
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    except ValueError as exc:
        raise KeyProviderError(f"bad X25519 public key for {key_id}: {exc}") from None
    wrap_key = _x25519_key(shared, ephemeral_public, recipient, key_id)
    return ephemeral_public + ChaCha20Poly1305(wrap_key).encrypt(ZERO_NONCE, data_key, _aad(key_id, context))


def _x25519_unwrap_key(private: bytes, ephemeral_public: bytes, key_id: str) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    key = X25519PrivateKey.from_private_bytes(private)
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    except ValueError:
        raise KeyProviderError(f"key {key_id} does not open this stanza (a bad ephemeral key)") from None
    return _x25519_key(shared, ephemeral_public, _raw(key.public_key()), key_id)


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
            and all(isinstance(key, dict) and _valid_key(key) for key in store["keys"])
            and any(key["id"] == store.get("default_key") for key in store["keys"])
        )
    except (ValueError, AttributeError, TypeError):
        ok = False
    if not ok:
        raise ConfigError(f"{path} is not a valid backstream keystore (version {KEYSTORE_VERSION})")
    result: dict[str, Any] = store
    return result


def _check_export_target(source: Path, target: Path, force: bool) -> None:
    """A public export is written only to a new path, or with ``force`` over a regular file that is
    itself a public export: never over its source, a keystore holding private keys, a symlink
    (even a dangling one), a directory or a device."""
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot export to {target}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"cannot export to {target}: it is not a regular file (a symlink, directory or device)")
    if os.path.samefile(source, target):
        raise ConfigError(f"cannot export to {target}: it is the keystore itself")
    if not force:
        raise ConfigError(f"{target} exists: choose another path, or --force to replace an earlier public export")
    existing = _load(target, False)
    assert existing is not None
    if any(_has_secret(key) for key in existing["keys"]):
        raise ConfigError(f"{target} holds private keys: a public export never replaces it")


def _valid_key(key: Mapping[str, Any]) -> bool:
    """A keystore entry: a sealed KEK (``k-``), or an X25519 public key whose sha256 gives its id
    (``x-``), with its sealed private key or without it (an exported keystore). Hex fields must be
    strings of the exact sizes, so a crafted file fails here and not deep inside a key operation."""
    key_id = key.get("id")
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        return False
    if key_id.startswith("x-"):
        public = key.get("public")
        if not _hex_of(public, 32) or _x25519_id(bytes.fromhex(str(public))) != key_id:
            return False
        if not _has_secret(key):
            return "kdf" not in key and "nonce" not in key
        sealed = key.get("sealed_private")
    else:
        sealed = key.get("sealed_kek")
    kdf = key.get("kdf")
    return (
        isinstance(kdf, dict)
        and all(isinstance(v, str) for v in kdf.values())
        and _hex_of(key.get("nonce"), 12)
        and _hex_of(sealed, 32 + 16)
    )


def _hex_of(value: object, size: int) -> bool:
    """True when ``value`` is ``size`` bytes in lowercase hex."""
    return isinstance(value, str) and len(value) == 2 * size and _HEX.fullmatch(value) is not None


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
