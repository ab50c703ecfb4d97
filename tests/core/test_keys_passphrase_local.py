"""The passphrase and local key providers, multi-stanza objects, key rotation and the audit log.

Argon2id costs are lowered through the explicit ``kdf.*`` options, except where the defaults are the subject.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from pathlib import Path

import anyio
import pytest
from backstream import (
    AuditLog,
    ConfigError,
    IntegrityError,
    KeyProvider,
    KeyProviderError,
    Stanza,
    check_kdf_params,
    key_providers,
    new_encryptor,
    read_header,
    rewrap_encrypted,
)
from backstream.crypto import ARGON2ID_DEFAULTS, build_object_header, parse_header
from fixtures.crypto_objects import (
    CONTEXT,
    FAST_KDF,
    NO_AUDIT,
    create_keystore_key,
    crypto_plugins,
    decrypt,
    encrypt,
    providers,
    stream_of,
)

DATA = os.urandom(3 * 65536 + 77)


pytestmark = pytest.mark.usefixtures("no_ambient_passphrase")


def _header(blob: bytes) -> object:
    async def main() -> object:
        header, _ = await read_header(stream_of(blob))
        return header

    return anyio.run(main)


def _body_sha256(blob: bytes) -> str:
    header = _header(blob)
    return hashlib.sha256(blob[len(header.raw) :]).hexdigest()  # type: ignore[attr-defined]


# --- passphrase -------------------------------------------------------------------------------


def test_passphrase_stanzas_use_argon2id_t3_m64mib_p4_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "defaults")
    keys = key_providers(crypto_plugins().kms())  # no kdf.* options
    blob = anyio.run(lambda: encrypt(b"x", ["passphrase"], provider_map=keys))
    params = dict(_header(blob).stanzas[0].params)  # type: ignore[attr-defined]
    assert params["kdf"] == "argon2id"
    assert (
        {name: int(params[name]) for name in ("t", "m", "p")}
        == dict(ARGON2ID_DEFAULTS)
        == {
            "t": 3,
            "m": 65536,
            "p": 4,
        }
    )
    assert anyio.run(lambda: decrypt(blob, provider_map=keys)) == b"x"


def test_passphrase_round_trip_with_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "scrypt please")
    keys = key_providers(crypto_plugins().kms(), {"kdf.ln": "10", "kdf.r": "8", "kdf.p": "1"})
    blob = anyio.run(lambda: encrypt(DATA, ["passphrase:scrypt"], provider_map=keys))
    params = _header(blob).stanzas[0].params  # type: ignore[attr-defined]
    assert params["kdf"] == "scrypt" and params["ln"] == "10"
    assert anyio.run(lambda: decrypt(blob, provider_map=keys)) == DATA


def test_wrong_passphrase_names_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "right")
    blob = anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=providers()))
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "wrong")
    with pytest.raises(KeyProviderError, match=r"no stanza could be unwrapped \(passphrase: wrong passphrase\)"):
        anyio.run(lambda: decrypt(blob, provider_map=providers()))


def test_passphrase_comes_from_the_first_line_of_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "pass.txt"
    secret.write_text("from a file\nignored second line\n")
    keys = providers(passphrase_file=str(secret))
    blob = anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=keys))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BACKSTREAM_PASSPHRASE", "from a file")
        assert anyio.run(lambda: decrypt(blob, provider_map=providers())) == DATA


def test_no_passphrase_source_is_a_config_error() -> None:
    keys = providers(interactive="no")
    with pytest.raises(ConfigError, match="no passphrase"):
        anyio.run(lambda: encrypt(b"x", ["passphrase"], provider_map=keys))


def _prepared(keys: dict[str, KeyProvider], ref: str = "passphrase") -> KeyProvider:
    provider = keys["passphrase"]
    provider.prepare(ref)  # type: ignore[attr-defined]
    return provider


def test_a_prepared_passphrase_key_serves_the_next_wrap_and_opens_as_usual(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "prepared")
    keys = providers()
    provider = _prepared(keys)
    prepared_params = provider._prepared[1]  # type: ignore[attr-defined]
    blob = anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=keys))
    assert dict(_header(blob).stanzas[0].params) == prepared_params  # type: ignore[attr-defined]
    assert anyio.run(lambda: decrypt(blob, provider_map=providers())) == DATA


def test_a_prepared_key_serves_one_wrap_only_every_object_gets_a_fresh_salt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "prepared")
    keys = providers()
    _prepared(keys)
    first = anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=keys))
    second = anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=keys))
    salts = {_header(blob).stanzas[0].params["salt"] for blob in (first, second)}  # type: ignore[attr-defined]
    assert len(salts) == 2
    assert anyio.run(lambda: decrypt(second, provider_map=providers())) == DATA


def test_a_key_prepared_for_another_key_reference_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "prepared")
    keys = key_providers(crypto_plugins().kms(), {"kdf": "scrypt", "kdf.ln": "10", "kdf.r": "8", "kdf.p": "1"})
    prepared_salt = _prepared(keys, "passphrase:scrypt")._prepared[1]["salt"]  # type: ignore[attr-defined]
    blob = anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=keys))
    params = _header(blob).stanzas[0].params  # type: ignore[attr-defined]
    assert params["kdf"] == "scrypt" and params["salt"] != prepared_salt
    assert anyio.run(lambda: decrypt(blob, provider_map=keys)) == DATA


def test_nothing_is_prepared_when_the_passphrase_would_need_a_prompt() -> None:
    keys = providers(interactive="no")
    provider = _prepared(keys)
    assert provider._prepared is None  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="no passphrase"):
        anyio.run(lambda: encrypt(b"x", ["passphrase"], provider_map=keys))


def test_a_prepared_key_whose_passphrase_file_is_unreadable_fails_the_wrap_with_the_usual_message(
    tmp_path: Path,
) -> None:
    keys = providers(passphrase_file=str(tmp_path / "missing.txt"))
    _prepared(keys)
    with pytest.raises(ConfigError, match=r"cannot read passphrase file .*missing\.txt"):
        anyio.run(lambda: encrypt(b"x", ["passphrase"], provider_map=keys))


def test_preparing_a_bad_kdf_name_is_left_to_the_wrap_to_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "p")
    keys = providers()
    assert _prepared(keys, "passphrase:md5")._prepared is None  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="md5"):
        anyio.run(lambda: encrypt(b"x", ["passphrase:md5"], provider_map=keys))


def test_no_passphrase_source_on_decrypt_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "p")
    blob = anyio.run(lambda: encrypt(b"x", ["passphrase"], provider_map=providers()))
    monkeypatch.delenv("BACKSTREAM_PASSPHRASE")
    with pytest.raises(ConfigError, match="no passphrase"):
        anyio.run(lambda: decrypt(blob, provider_map=providers(interactive="no")))


@pytest.mark.parametrize(
    "params",
    [
        {"kdf": "argon2id", "t": "3", "m": str(64 * 1024 * 1024), "p": "4"},  # 64 GiB
        {"kdf": "argon2id", "t": "1000000", "m": "65536", "p": "4"},
        {"kdf": "argon2id", "t": "16", "m": str(1024 * 1024), "p": "4"},  # 16 passes over 1 GiB
        {"kdf": "argon2id", "t": "3", "m": "65536", "p": "255"},
        {"kdf": "scrypt", "ln": "40", "r": "8", "p": "1"},
        {"kdf": "scrypt", "ln": "20", "r": "32", "p": "1"},
        {"kdf": "pbkdf2", "rounds": "1"},
    ],
)
def test_hostile_kdf_parameters_are_refused_before_any_work(
    params: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "p")
    stanza = Stanza("passphrase", "passphrase", {**params, "salt": "00" * 16}, bytes(48))
    blob = build_object_header(suite_id=1, salt=bytes(32), context=CONTEXT, stanzas=[stanza], data_key=bytes(32)).raw
    started = time.perf_counter()
    with pytest.raises(IntegrityError):
        anyio.run(lambda: decrypt(blob + bytes(16), provider_map=providers()))
    assert time.perf_counter() - started < 0.5


def test_kdf_caps_accept_the_defaults_and_scrypt_ln18() -> None:
    check_kdf_params({"kdf": "argon2id", "salt": "00" * 16, "t": "3", "m": "65536", "p": "4"})
    check_kdf_params({"kdf": "scrypt", "salt": "00" * 16, "ln": "18", "r": "8", "p": "1"})


def test_key_derivation_leaves_the_event_loop_free(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "slow")
    keys = key_providers(crypto_plugins().kms())  # default Argon2id: ~0.2 s of work per derivation
    ticks = 0

    async def main() -> None:
        nonlocal ticks

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await anyio.sleep(0.01)
                ticks += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            started = time.perf_counter()
            await encrypt(b"x", ["passphrase"], provider_map=keys)
            elapsed = time.perf_counter() - started
            tg.cancel_scope.cancel()
        assert ticks >= elapsed / 0.01 / 3

    anyio.run(main)


def test_a_passphrase_cannot_be_combined_with_other_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = create_keystore_key(tmp_path / "ks.json")
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "keystore secret")
    with pytest.raises(ConfigError, match="must be the only key"):
        anyio.run(lambda: encrypt(b"x", ["passphrase", ref], provider_map=providers()))


def test_an_object_with_a_passphrase_stanza_among_others_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "p")
    single = anyio.run(lambda: encrypt(b"x", ["passphrase"], provider_map=providers()))
    stanza = _header(single).stanzas[0]  # type: ignore[attr-defined]
    header = build_object_header(
        suite_id=1,
        salt=bytes(32),
        context=CONTEXT,
        stanzas=[stanza, Stanza("local", "local:/x", {}, b"k")],
        data_key=bytes(32),
    )
    with pytest.raises(IntegrityError, match="must be the only stanza"):
        anyio.run(lambda: decrypt(header.raw + bytes(16), provider_map=providers()))


# --- local keystore ---------------------------------------------------------------------------


def test_keys_create_writes_a_private_keystore_without_the_plain_kek(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ks.json"
    ref = create_keystore_key(path)
    assert ref.startswith(f"local:{path}#k-")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store = json.loads(path.read_text())
    assert store["format"] == "backstream-keystore" and store["version"] == 1
    (key,) = store["keys"]
    assert key["id"] == ref.rpartition("#")[2] == store["default_key"]
    assert key["kdf"]["kdf"] == "argon2id"
    assert len(bytes.fromhex(key["sealed_kek"])) == 32 + 16


def test_local_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = create_keystore_key(tmp_path / "ks.json")
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "keystore secret")
    blob = anyio.run(lambda: encrypt(DATA, [f"local:{tmp_path / 'ks.json'}"], provider_map=providers()))
    (stanza,) = _header(blob).stanzas  # type: ignore[attr-defined]
    assert stanza.scheme == "local" and stanza.key_ref == ref
    assert anyio.run(lambda: decrypt(blob, provider_map=providers())) == DATA


def test_the_keystore_passphrase_may_have_its_own_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = create_keystore_key(tmp_path / "ks.json")
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "something else")
    monkeypatch.setenv("BACKSTREAM_KEYSTORE_PASSPHRASE", "keystore secret")
    blob = anyio.run(lambda: encrypt(DATA, [ref], provider_map=providers()))
    assert anyio.run(lambda: decrypt(blob, provider_map=providers())) == DATA


def test_wrong_keystore_passphrase_is_a_key_provider_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = create_keystore_key(tmp_path / "ks.json")
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "keystore secret")
    blob = anyio.run(lambda: encrypt(DATA, [ref], provider_map=providers()))
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "wrong")
    with pytest.raises(KeyProviderError, match="wrong passphrase for keystore"):
        anyio.run(lambda: decrypt(blob, provider_map=providers()))


def test_a_local_stanza_does_not_open_under_another_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = create_keystore_key(tmp_path / "ks.json")
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "keystore secret")
    local = providers()["local"]

    async def main() -> None:
        stanza = await local.wrap(bytes(32), key_ref=ref, context={"backup_id": "a"})
        assert await local.unwrap(stanza, context={"backup_id": "a"}) == bytes(32)
        with pytest.raises(KeyProviderError, match="wrong object context"):
            await local.unwrap(stanza, context={"backup_id": "b"})

    anyio.run(main)


def test_two_keystores_either_one_opens_the_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "primary.json", tmp_path / "break-glass.json"
    refs = [create_keystore_key(first, "same"), create_keystore_key(second, "same")]
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "same")
    blob = anyio.run(lambda: encrypt(DATA, refs, provider_map=providers()))
    assert [s.scheme for s in _header(blob).stanzas] == ["local", "local"]  # type: ignore[attr-defined]
    first.rename(tmp_path / "gone-1.json")
    assert anyio.run(lambda: decrypt(blob, provider_map=providers())) == DATA
    (tmp_path / "gone-1.json").rename(first)
    second.rename(tmp_path / "gone-2.json")
    assert anyio.run(lambda: decrypt(blob, provider_map=providers())) == DATA
    first.rename(tmp_path / "gone-1.json")
    with pytest.raises(KeyProviderError, match="in no keystore"):
        anyio.run(lambda: decrypt(blob, provider_map=providers()))


def test_with_keystores_under_different_passphrases_the_one_that_unlocks_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alpha, bravo = create_keystore_key(tmp_path / "a.json", "alpha"), create_keystore_key(tmp_path / "b.json", "bravo")
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "alpha")
    monkeypatch.setenv("NEW_PASS", "bravo")
    blob = anyio.run(lambda: encrypt(DATA, [alpha], provider_map=providers()))
    both = anyio.run(
        lambda: _rotate(
            blob,
            [bravo],
            providers=providers(),
            wrap_providers=providers(passphrase_env="NEW_PASS"),
            keep_existing=True,
        )
    )
    assert [s.key_ref for s in _header(both).stanzas] == [alpha, bravo]  # type: ignore[attr-defined]
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "bravo")  # the first stanza fails, the second opens
    assert anyio.run(lambda: decrypt(both, provider_map=providers())) == DATA
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "charlie")
    with pytest.raises(
        KeyProviderError, match=r"wrong passphrase for keystore .*a\.json.*wrong passphrase for keystore"
    ):
        anyio.run(lambda: decrypt(both, provider_map=providers()))


def test_a_moved_keystore_is_found_with_the_keystore_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = create_keystore_key(tmp_path / "ks.json")
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "keystore secret")
    blob = anyio.run(lambda: encrypt(DATA, [ref], provider_map=providers()))
    moved = tmp_path / "elsewhere" / "copy.json"
    moved.parent.mkdir()
    (tmp_path / "ks.json").rename(moved)
    assert anyio.run(lambda: decrypt(blob, provider_map=providers(keystore=str(moved)))) == DATA


def test_creating_again_adds_a_new_default_key_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ks.json"
    old_ref = create_keystore_key(path)
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "keystore secret")
    old_blob = anyio.run(lambda: encrypt(DATA, [f"local:{path}"], provider_map=providers()))
    new_ref = create_keystore_key(path)
    assert new_ref != old_ref
    new_blob = anyio.run(lambda: encrypt(DATA, [f"local:{path}"], provider_map=providers()))
    assert _header(new_blob).stanzas[0].key_ref == new_ref  # type: ignore[attr-defined]
    assert anyio.run(lambda: decrypt(old_blob, provider_map=providers())) == DATA
    assert len(json.loads(path.read_text())["keys"]) == 2


def test_adding_a_key_requires_the_keystore_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "ks.json"
    create_keystore_key(path, "right")
    with pytest.raises(KeyProviderError, match="wrong passphrase for keystore"):
        create_keystore_key(path, "wrong")


def test_a_corrupt_keystore_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ks.json"
    path.write_text('{"format": "something else"}')
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "p")
    with pytest.raises(ConfigError, match="not a valid backstream keystore"):
        anyio.run(lambda: encrypt(b"x", [f"local:{path}"], provider_map=providers()))


def test_a_missing_keystore_on_encrypt_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keys create"):
        anyio.run(lambda: encrypt(b"x", [f"local:{tmp_path / 'none.json'}"], provider_map=providers()))


# --- rotation -----------------------------------------------------------------------------------


async def _rotate(blob: bytes, key_refs: list[str], **kwargs: object) -> bytes:
    rotated = await rewrap_encrypted(stream_of(blob, 5000), key_refs, audit=NO_AUDIT, **kwargs)  # type: ignore[arg-type]
    out = bytearray(rotated.header.raw)
    async for chunk in rotated.rest:
        out += chunk
    return bytes(out)


def test_rotation_rewrites_only_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "old passphrase")
    blob = anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=providers()))
    ref = create_keystore_key(tmp_path / "ks.json", "keystore secret")
    wrap_keys = providers(passphrase_env="NEW_PASS")
    monkeypatch.setenv("NEW_PASS", "keystore secret")
    rotated = anyio.run(lambda: _rotate(blob, [ref], providers=providers(), wrap_providers=wrap_keys))
    assert _body_sha256(rotated) == _body_sha256(blob)
    old, new = _header(blob), _header(rotated)
    assert new.object_id == old.object_id  # type: ignore[attr-defined]
    assert [s.scheme for s in new.stanzas] == ["local"]  # type: ignore[attr-defined]
    # the new key opens it; the old passphrase no longer does (its stanza is gone)
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "keystore secret")
    assert anyio.run(lambda: decrypt(rotated, provider_map=providers())) == DATA
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "old passphrase")
    with pytest.raises(KeyProviderError):
        anyio.run(lambda: decrypt(rotated, provider_map=providers()))


def test_rotation_to_a_new_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "old")
    monkeypatch.setenv("NEW_PASS", "new")
    blob = anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=providers()))
    rotated = anyio.run(
        lambda: _rotate(
            blob, ["passphrase"], providers=providers(), wrap_providers=providers(passphrase_env="NEW_PASS")
        )
    )
    assert _body_sha256(rotated) == _body_sha256(blob)
    with pytest.raises(KeyProviderError, match="wrong passphrase"):
        anyio.run(lambda: decrypt(rotated, provider_map=providers()))
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "new")
    assert anyio.run(lambda: decrypt(rotated, provider_map=providers())) == DATA


def test_rotation_can_keep_the_existing_stanzas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    primary, extra = create_keystore_key(tmp_path / "a.json", "k"), create_keystore_key(tmp_path / "b.json", "k")
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "k")
    blob = anyio.run(lambda: encrypt(DATA, [primary], provider_map=providers()))
    rotated = anyio.run(lambda: _rotate(blob, [extra], providers=providers(), keep_existing=True))
    assert [s.key_ref for s in _header(rotated).stanzas] == [primary, extra]  # type: ignore[attr-defined]
    assert _body_sha256(rotated) == _body_sha256(blob)
    (tmp_path / "a.json").unlink()
    assert anyio.run(lambda: decrypt(rotated, provider_map=providers())) == DATA


def test_rotation_needs_a_key_that_opens_the_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "right")
    blob = anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=providers()))
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "wrong")
    with pytest.raises(KeyProviderError):
        anyio.run(lambda: _rotate(blob, ["passphrase"], providers=providers()))


def test_a_rotated_header_cannot_be_put_on_another_body(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "p")
    blob = anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=providers()))
    other = anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=providers()))
    rotated = anyio.run(lambda: _rotate(blob, ["passphrase"], providers=providers()))
    header = parse_header(rotated[: len(_header(rotated).raw)])  # type: ignore[attr-defined]
    other_body = other[len(_header(other).raw) :]  # type: ignore[attr-defined]
    with pytest.raises(IntegrityError, match="chunk 0 failed"):
        anyio.run(lambda: decrypt(header.raw + other_body, provider_map=providers()))


# --- audit log ------------------------------------------------------------------------------------


def test_key_operations_are_audited_without_key_material(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log_path = tmp_path / "state" / "audit.log"
    audit = AuditLog(log_path)
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "audited secret")
    keys = providers()
    chacha = crypto_plugins().ciphers().get("chacha20-poly1305")

    async def main() -> str:
        encryptor = await new_encryptor(
            ["passphrase"], providers=keys, cipher=chacha, context=CONTEXT, object_name="obj.bse", audit=audit
        )
        blob = encryptor.update(DATA) + encryptor.finish()
        await decrypt(blob, provider_map=keys, audit=audit)
        rotated = await rewrap_encrypted(stream_of(blob), ["passphrase"], providers=keys, audit=audit)
        return rotated.header.object_id

    object_id = anyio.run(main)
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [e["op"] for e in entries] == ["wrap", "unwrap", "unwrap", "wrap", "rotate"]
    for entry in entries:
        assert {"time", "op", "user", "host", "pid", "object_id"} <= set(entry)
        assert entry["object_id"] == object_id
    assert entries[0]["object"] == "obj.bse" and entries[0]["context"]["backup_id"] == CONTEXT["backup_id"]
    assert entries[1]["outcome"] == "ok" and entries[1]["scheme"] == "passphrase"
    assert "audited secret" not in log_path.read_text()
    assert stat.S_IMODE(log_path.stat().st_mode) == 0o600


def test_failed_unwraps_are_audited(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.log")
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "right")
    blob = anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=providers()))
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "wrong")
    with pytest.raises(KeyProviderError):
        anyio.run(lambda: decrypt(blob, provider_map=providers(), audit=audit))
    (entry,) = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert entry["op"] == "unwrap" and entry["outcome"] == "failed" and entry["error"] == "wrong passphrase"


def test_the_audit_log_location_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BACKSTREAM_AUDIT_LOG", str(tmp_path / "custom.log"))
    assert AuditLog().path == tmp_path / "custom.log"
    monkeypatch.setenv("BACKSTREAM_AUDIT_LOG", "off")
    assert AuditLog().path is None
    monkeypatch.delenv("BACKSTREAM_AUDIT_LOG")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert AuditLog().path == tmp_path / "xdg" / "backstream" / "audit.log"


def test_an_unwritable_audit_log_stops_the_key_operation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "p")
    with pytest.raises(ConfigError, match="audit log"):
        anyio.run(lambda: encrypt(b"x", ["passphrase"], provider_map=providers(), audit=AuditLog(blocker / "a.log")))


def test_fast_kdf_options_are_explicit_and_never_the_default() -> None:
    assert FAST_KDF["kdf.m"] != str(ARGON2ID_DEFAULTS["m"])


def test_jobs_prepare_the_providers_of_their_key_references_before_the_first_wrap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from backstream.jobs.encryption import KeyOptions, prepared_providers

    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "p")
    keys = prepared_providers(crypto_plugins(), ["passphrase"], KeyOptions(provider_options=FAST_KDF))
    assert keys["passphrase"]._prepared is not None  # type: ignore[attr-defined]
    # a provider without prepare() (local) is simply left to do its work in wrap()
    assert not hasattr(keys["local"], "prepare")
    prepared_providers(crypto_plugins(), [f"local:{tmp_path / 'ks.json'}"], KeyOptions(provider_options=FAST_KDF))


def test_one_job_unseals_a_keystore_key_once_for_all_its_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import backstream_plugins.kms.local as local_module
    from backstream.jobs.encryption import KeyOptions, open_decrypting

    ref = create_keystore_key(tmp_path / "ks.json")
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "keystore secret")
    blobs = [anyio.run(lambda: encrypt(DATA, [ref], provider_map=providers())) for _ in range(3)]
    derivations: list[object] = []
    real = local_module.derive_passphrase_key
    monkeypatch.setattr(local_module, "derive_passphrase_key", lambda *a: derivations.append(a) or real(*a))
    keys = KeyOptions(provider_options={"keystore": str(tmp_path / "ks.json"), **FAST_KDF})

    plugins = crypto_plugins()
    assert keys.providers(plugins) is keys.providers(plugins)

    async def main() -> None:
        for blob in blobs:  # as a restore job opens its objects one after another
            stage, rest = await open_decrypting(plugins, stream_of(blob), CONTEXT, keys=keys)
            assert stage.codec.update(b"".join([piece async for piece in rest])) + stage.codec.finish() == DATA

    anyio.run(main)
    assert len(derivations) == 1  # one Argon2id for three objects
