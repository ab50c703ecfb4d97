"""The test vectors of docs/format.md, checked in both directions.

Encrypt: an independent re-implementation of the spec and backstream.crypto both reproduce the
exact bytes. Decrypt: backstream opens the vector objects with the passphrase and gets the plaintext.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

import anyio
import pytest
from backstream import Stanza, open_encrypted
from backstream.crypto import StreamEncryptor, build_object_header, header_mac_key, payload_key
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fixtures.crypto_objects import NO_AUDIT, cipher, ciphers, providers, stream_of

FORMAT_MD = Path(__file__).resolve().parents[2] / "docs" / "format.md"
AEADS = {"chacha20-poly1305": (1, ChaCha20Poly1305), "aes-256-gcm": (2, AESGCM)}


def _parse_vectors() -> list[dict[str, object]]:
    vectors = []
    for block in re.findall(r"^```vector\n(.*?)^```$", FORMAT_MD.read_text(), flags=re.S | re.M):
        fields: dict[str, object] = {"context": {}}
        last = ""
        for line in block.splitlines():
            if line.startswith("  "):
                fields[last] = str(fields[last]) + line.strip()
                continue
            name, _, value = line.partition(":")
            value = value.strip()
            if name == "context":
                key, _, text = value.partition("=")
                fields["context"][key] = text  # type: ignore[index]
            else:
                fields[name] = value
            last = name
        vectors.append(fields)
    return vectors


VECTORS = _parse_vectors()


def _hex(vector: dict[str, object], name: str) -> bytes:
    return bytes.fromhex(str(vector[name]))


def _plaintext(vector: dict[str, object]) -> bytes:
    if "plaintext_pattern" in vector:
        return bytes(i % 251 for i in range(int(str(vector["plaintext_pattern"]))))
    return _hex(vector, "plaintext_hex")


def _kdf_params(vector: dict[str, object]) -> dict[str, str]:
    return {
        "kdf": str(vector["kdf"]),
        "salt": str(vector["kdf_salt"]),
        "t": str(vector["kdf_t"]),
        "m": str(vector["kdf_m"]),
        "p": str(vector["kdf_p"]),
    }


def _spec_object(vector: dict[str, object]) -> bytes:
    """The object built from the spec alone, with cryptography primitives (no backstream code)."""
    suite_id, aead_class = AEADS[str(vector["cipher"])]
    data_key, salt = _hex(vector, "data_key"), _hex(vector, "stream_salt")
    wrap_key = Argon2id(
        salt=_hex(vector, "kdf_salt"),
        length=32,
        iterations=int(str(vector["kdf_t"])),
        lanes=int(str(vector["kdf_p"])),
        memory_cost=int(str(vector["kdf_m"])),
    ).derive(str(vector["passphrase"]).encode())
    assert wrap_key == _hex(vector, "passphrase_wrap_key")
    wrapped = ChaCha20Poly1305(wrap_key).encrypt(bytes(12), data_key, b"backstream/v1 passphrase")
    assert wrapped == _hex(vector, "wrapped_key")

    def text(value: str, width: int) -> bytes:
        raw = value.encode()
        return len(raw).to_bytes(width, "big") + raw

    context = vector["context"]
    assert isinstance(context, dict)
    encoded_context = bytes([len(context)]) + b"".join(text(key, 1) + text(context[key], 2) for key in sorted(context))
    preamble = (
        b"\x89BSE\r\n\x1a\n"
        + bytes([1, suite_id, 16])
        + salt
        + len(encoded_context).to_bytes(2, "big")
        + encoded_context
    )
    params = _kdf_params(vector)
    stanza = (
        text("passphrase", 1)
        + text("passphrase", 2)
        + bytes([len(params)])
        + b"".join(text(name, 1) + text(params[name], 2) for name in sorted(params))
        + len(wrapped).to_bytes(2, "big")
        + wrapped
    )
    body = preamble + b"\x01" + stanza

    def hkdf(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(data_key)

    mac_key = hkdf(b"backstream/v1 header-mac")
    key = hkdf(b"backstream/v1 payload" + hashlib.sha256(preamble).digest())
    assert mac_key == _hex(vector, "header_mac_key")
    assert key == _hex(vector, "payload_key")
    header = body + hmac.new(mac_key, body, hashlib.sha256).digest()
    plaintext = _plaintext(vector)
    chunks = [plaintext[i : i + 65536] for i in range(0, len(plaintext), 65536)] or [b""]
    aead = aead_class(key)
    payload = b"".join(
        aead.encrypt(index.to_bytes(11, "big") + bytes([index == len(chunks) - 1]), chunk, None)
        for index, chunk in enumerate(chunks)
    )
    return header + payload


def _check_against_vector(vector: dict[str, object], blob: bytes) -> None:
    assert len(blob) == int(str(vector["object_length"]))
    assert hashlib.sha256(blob).hexdigest() == vector["object_sha256"]
    if "object" in vector:
        assert blob == _hex(vector, "object")
    else:
        header = _hex(vector, "header")
        final = _hex(vector, "final_chunk")
        assert blob.startswith(header) and blob.endswith(final)
        assert len(header) == int(str(vector["header_length"]))


def test_format_md_holds_the_three_vectors() -> None:
    assert [v["name"] for v in VECTORS] == [
        "chacha20-poly1305-empty",
        "aes-256-gcm-short",
        "chacha20-poly1305-three-chunks",
    ]


@pytest.mark.parametrize("vector", VECTORS, ids=[str(v["name"]) for v in VECTORS])
def test_the_spec_reimplemented_reproduces_the_vector(vector: dict[str, object]) -> None:
    _check_against_vector(vector, _spec_object(vector))


@pytest.mark.parametrize("vector", VECTORS, ids=[str(v["name"]) for v in VECTORS])
def test_backstream_encrypts_to_the_vector_bytes(vector: dict[str, object]) -> None:
    data_key, salt = _hex(vector, "data_key"), _hex(vector, "stream_salt")
    suite = cipher(str(vector["cipher"]))
    stanza = Stanza("passphrase", "passphrase", _kdf_params(vector), _hex(vector, "wrapped_key"))
    context = vector["context"]
    assert isinstance(context, dict)
    header = build_object_header(
        suite_id=suite.suite_id, salt=salt, context=context, stanzas=[stanza], data_key=data_key
    )
    assert header_mac_key(data_key, salt) == _hex(vector, "header_mac_key")
    assert payload_key(data_key, salt, header.preamble) == _hex(vector, "payload_key")
    encryptor = StreamEncryptor(suite.aead(payload_key(data_key, salt, header.preamble)), prefix=header.raw)
    plaintext = _plaintext(vector)
    blob = b"".join(encryptor.update(plaintext[i : i + 1000]) for i in range(0, len(plaintext), 1000))
    _check_against_vector(vector, blob + encryptor.finish())


@pytest.mark.parametrize("vector", VECTORS, ids=[str(v["name"]) for v in VECTORS])
def test_backstream_decrypts_the_vector_with_the_passphrase(
    vector: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", str(vector["passphrase"]))
    blob = _hex(vector, "object") if "object" in vector else _spec_object(vector)
    _check_against_vector(vector, blob)

    async def main() -> tuple[bytes, dict[str, str]]:
        opened = await open_encrypted(stream_of(blob, 4096), providers=providers(), ciphers=ciphers(), audit=NO_AUDIT)
        out = bytearray()
        async for chunk in opened.rest:
            out += opened.codec.update(chunk)
        out += opened.codec.finish()
        return bytes(out), dict(opened.header.context)

    plaintext, context = anyio.run(main)
    assert plaintext == _plaintext(vector)
    assert context == vector["context"]
