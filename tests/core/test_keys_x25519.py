"""X25519 keys in local keystores: encrypting needs only the public half (no passphrase, no KDF),
decrypting needs the sealed private half; a public export cannot decrypt; the stanza as format.md
specifies it, checked against an independent implementation of that text.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import anyio
import pytest
from backstream import ConfigError, KeyProviderError, Stanza, encode_context
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fixtures.crypto_objects import CONTEXT, create_keystore_key, decrypt, encrypt, providers
from fixtures.verify_cli import cli, make_env

DATA = os.urandom(2 * 65536 + 5)
PASS = "keystore secret"


pytestmark = pytest.mark.usefixtures("no_ambient_passphrase")


def _create(path: Path, kind: str = "x25519") -> str:
    return create_keystore_key(path, PASS, key_kind=kind)


def _export(full: Path | str, out: Path, *, force: bool = False) -> str:
    ref = full if isinstance(full, str) else f"local:{full}"

    async def main() -> str:
        local = providers()["local"]
        exported: str = await local.export_public(ref, str(out), force=force)  # type: ignore[attr-defined]
        return exported

    return anyio.run(main)


def _raw_public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_a_new_x25519_key_is_pinned_by_its_id_and_its_private_half_is_sealed(tmp_path: Path) -> None:
    path = tmp_path / "ks.json"
    ref = _create(path)
    store = json.loads(path.read_text())
    (key,) = store["keys"]
    assert ref == f"local:{path}#{key['id']}" and key["id"] == store["default_key"]
    assert key["kind"] == "x25519"
    assert key["id"] == "x-" + hashlib.sha256(bytes.fromhex(key["public"])).hexdigest()[:32]  # 128 bits pin it
    assert len(bytes.fromhex(key["sealed_private"])) == 32 + 16 and "sealed_kek" not in key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_encrypting_to_an_x25519_key_needs_no_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _create(tmp_path / "ks.json")
    blob = anyio.run(lambda: encrypt(DATA, [ref], provider_map=providers(interactive="no")))  # no passphrase anywhere
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", PASS)
    assert anyio.run(lambda: decrypt(blob, provider_map=providers())) == DATA
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "wrong")
    with pytest.raises(KeyProviderError, match="wrong passphrase for keystore"):
        anyio.run(lambda: decrypt(blob, provider_map=providers()))


def test_a_public_export_encrypts_but_cannot_decrypt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full, public = tmp_path / "ks.json", tmp_path / "public.json"
    ref = _create(full)
    exported = _export(full, public)
    assert exported == f"local:{public}#{ref.rpartition('#')[2]}"
    (key,) = json.loads(public.read_text())["keys"]
    assert set(key) == {"id", "created_at", "kind", "public"}  # nothing sealed, no KDF parameters
    blob = anyio.run(lambda: encrypt(DATA, [exported], provider_map=providers(interactive="no")))
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", PASS)
    with pytest.raises(KeyProviderError, match=r"only a public key in .*public\.json"):
        anyio.run(lambda: decrypt(blob, provider_map=providers()))
    assert anyio.run(lambda: decrypt(blob, provider_map=providers(keystore=str(full)))) == DATA


def test_a_public_key_that_does_not_match_its_id_is_refused(tmp_path: Path) -> None:
    full, public = tmp_path / "ks.json", tmp_path / "public.json"
    _create(full)
    ref = _export(full, public)
    store = json.loads(public.read_text())
    store["keys"][0]["public"] = _raw_public(X25519PrivateKey.generate()).hex()  # an attacker's key
    public.write_text(json.dumps(store))
    with pytest.raises(ConfigError, match="not a valid backstream keystore"):
        anyio.run(lambda: encrypt(b"x", [ref], provider_map=providers()))


def test_an_x25519_stanza_is_bound_to_its_object_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _create(tmp_path / "ks.json")
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", PASS)
    local = providers()["local"]

    async def main() -> None:
        stanza = await local.wrap(bytes(range(32)), key_ref=ref, context={"backup_id": "a"})
        assert len(stanza.wrapped_key) == 32 + 48
        assert await local.unwrap(stanza, context={"backup_id": "a"}) == bytes(range(32))
        with pytest.raises(KeyProviderError, match="wrong object context or modified stanza"):
            await local.unwrap(stanza, context={"backup_id": "b"})
        flipped = bytes([stanza.wrapped_key[0] ^ 1]) + stanza.wrapped_key[1:]  # another ephemeral key
        with pytest.raises(KeyProviderError, match="does not open this stanza"):
            await local.unwrap(
                Stanza(stanza.scheme, stanza.key_ref, stanza.params, flipped), context={"backup_id": "a"}
            )

    anyio.run(main)


def test_exporting_a_keystore_whose_default_key_is_symmetric_is_refused(tmp_path: Path) -> None:
    full = tmp_path / "ks.json"
    _create(full, kind="symmetric")
    with pytest.raises(ConfigError, match="is symmetric and cannot be exported"):
        _export(full, tmp_path / "public.json")


def test_an_x25519_key_named_in_the_reference_is_exported_even_if_not_the_default(tmp_path: Path) -> None:
    full, public = tmp_path / "ks.json", tmp_path / "public.json"
    x25519 = _create(full)
    _create(full, kind="symmetric")  # now the default
    key_id = x25519.rpartition("#")[2]
    assert _export(x25519, public) == f"local:{public}#{key_id}"
    assert json.loads(public.read_text())["default_key"] == key_id


def test_an_export_never_replaces_a_keystore_with_private_keys(tmp_path: Path) -> None:
    full, public, other = tmp_path / "ks.json", tmp_path / "public.json", tmp_path / "other.json"
    _create(full)
    _create(other)
    before = full.read_bytes()
    with pytest.raises(ConfigError, match="the keystore itself"):
        _export(full, full, force=True)
    with pytest.raises(ConfigError, match="holds private keys"):
        _export(full, other, force=True)
    assert full.read_bytes() == before
    _export(full, public)
    with pytest.raises(ConfigError, match="exists: choose another path, or --force"):
        _export(full, public)
    _export(full, public, force=True)  # an earlier public export may be replaced
    link = tmp_path / "dangling.json"
    link.symlink_to(tmp_path / "nowhere.json")
    with pytest.raises(ConfigError, match="not a regular file"):
        _export(full, link)


@pytest.mark.parametrize(
    "field, value",
    [
        ("public", int("1" * 64)),  # a number, not hex text
        ("public", "ab" * 31),  # 31 bytes
        ("nonce", "00" * 11),
        ("sealed_private", "00" * 47),
    ],
)
def test_a_crafted_keystore_entry_is_refused_in_one_line(
    tmp_path: Path, field: str, value: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ks.json"
    ref = _create(path)
    store = json.loads(path.read_text())
    store["keys"][0][field] = value
    path.write_text(json.dumps(store))
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", PASS)
    with pytest.raises(ConfigError, match="not a valid backstream keystore"):
        anyio.run(lambda: encrypt(b"x", [ref], provider_map=providers()))


def test_keys_cannot_be_added_to_a_public_export(tmp_path: Path) -> None:
    full, public = tmp_path / "ks.json", tmp_path / "public.json"
    _create(full)
    _export(full, public)
    with pytest.raises(ConfigError, match="holds public keys only"):
        _create(public)


def test_a_keystore_may_hold_both_kinds_and_each_opens_its_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ks.json"
    symmetric = _create(path, kind="symmetric")
    x25519 = _create(path)  # becomes the default
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", PASS)
    for ref in (symmetric, x25519, f"local:{path}"):
        blob = anyio.run(lambda ref=ref: encrypt(DATA, [ref], provider_map=providers()))
        assert anyio.run(lambda blob=blob: decrypt(blob, provider_map=providers())) == DATA


# --- the stanza as format.md writes it, implemented again from the text --------------------------


def _spec_wrap(recipient: bytes, ephemeral: X25519PrivateKey, key_id: str, data_key: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    epk = _raw_public(ephemeral)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    info = b"backstream/v1 local x25519\x00" + key_id.encode()
    wrap_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + recipient, info=info).derive(shared)
    aad = b"backstream/v1 local\x00" + key_id.encode() + b"\x00" + encode_context(CONTEXT)
    return epk + ChaCha20Poly1305(wrap_key).encrypt(bytes(12), data_key, aad)


def _spec_unwrap(private: X25519PrivateKey, key_id: str, wrapped: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    epk, sealed = wrapped[:32], wrapped[32:]
    shared = private.exchange(X25519PublicKey.from_public_bytes(epk))
    info = b"backstream/v1 local x25519\x00" + key_id.encode()
    wrap_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + _raw_public(private), info=info).derive(shared)
    aad = b"backstream/v1 local\x00" + key_id.encode() + b"\x00" + encode_context(CONTEXT)
    return ChaCha20Poly1305(wrap_key).decrypt(bytes(12), sealed, aad)


def _private_key_of(path: Path, key_id: str) -> X25519PrivateKey:
    async def main() -> bytes:
        local = providers(passphrase_env="KS_TEST_PASS")["local"]
        store = json.loads(path.read_text())
        secret: bytes = await local._secret(path, store, key_id)  # type: ignore[attr-defined]
        return secret

    os.environ["KS_TEST_PASS"] = PASS
    try:
        return X25519PrivateKey.from_private_bytes(anyio.run(main))
    finally:
        del os.environ["KS_TEST_PASS"]


def test_the_format_md_stanza_opens_with_backstream_and_backstream_s_stanza_opens_by_the_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ks.json"
    ref = _create(path)
    key_id = ref.rpartition("#")[2]
    recipient = bytes.fromhex(json.loads(path.read_text())["keys"][0]["public"])
    data_key = os.urandom(32)
    wrapped = _spec_wrap(recipient, X25519PrivateKey.generate(), key_id, data_key)
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", PASS)
    local = providers()["local"]
    stanza = Stanza("local", ref, {"key_id": key_id}, wrapped)
    assert anyio.run(lambda: local.unwrap(stanza, context=CONTEXT)) == data_key
    ours = anyio.run(lambda: local.wrap(data_key, key_ref=ref, context=CONTEXT))
    assert _spec_unwrap(_private_key_of(path, key_id), key_id, ours.wrapped_key) == data_key


def test_cli_backup_to_a_public_export_without_a_passphrase_restores_with_the_keystore(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    full, public = tmp_path / "ks.json", tmp_path / "public.json"
    with_pass = {**env, "BACKSTREAM_PASSPHRASE": PASS}
    made = cli("keys", "create", "--keystore", str(full), "--kind", "x25519", "--kdf-param", "m=1024", env=with_pass)
    assert "#x-" in made.stdout
    ref = cli("keys", "export-public", f"local:{full}", "-o", str(public), env=env).stdout.strip()
    import sqlite3

    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (v text)")
        conn.executemany("INSERT INTO t VALUES (?)", [(f"row {i}",) for i in range(1000)])
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=env)
    backup_id = cli("backup", f"sqlite://{db}", "--repo", repo, "--encrypt", ref, env=env).stdout.strip()
    target = tmp_path / "restored.db"
    failed = cli("restore", backup_id, "--repo", repo, "--to", f"sqlite://{target}", env=env, expect=1)
    assert "only a public key" in failed.stderr and "Traceback" not in failed.stderr
    cli("restore", backup_id, "--repo", repo, "--to", f"sqlite://{target}", "--keystore", str(full), env=with_pass)
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1000


def test_cli_refuses_an_x25519_kind_for_another_provider_and_an_export_over_its_keystore(tmp_path: Path) -> None:
    env = {**make_env(tmp_path), "BACKSTREAM_PASSPHRASE": PASS}
    wrong = cli("keys", "create", "aws-kms:alias/x", "--kind", "x25519", env=env, expect=2)
    assert "makes keys in local keystores only" in wrong.stderr
    full = tmp_path / "ks.json"
    cli("keys", "create", "--keystore", str(full), "--kind", "x25519", "--kdf-param", "m=1024", env=env)
    refused = cli("keys", "export-public", f"local:{full}", "-o", str(full), "--force", env=env, expect=2)
    assert refused.stderr.startswith("backstream: error: cannot export to") and "Traceback" not in refused.stderr
    assert "sealed_private" in full.read_text()
