"""The encrypted object format v1: round trips, chunking, header encoding and limits, pipeline use.

Tampering is specified in test_crypto_tamper.py; key providers in test_keys_passphrase_local.py.
"""

from __future__ import annotations

import os

import anyio
import pytest
from backstream import (
    ConfigError,
    IntegrityError,
    MemoryWriter,
    Pipeline,
    Transform,
    iterable_source,
    memory_sink,
    new_encryptor,
    open_encrypted,
)
from backstream.crypto import (
    MAGIC,
    SEALED_CHUNK_SIZE,
    StreamDecryptor,
    StreamEncryptor,
    decode_context,
    encode_context,
    parse_header,
    read_header,
)
from backstream.crypto.header import MAX_HEADER_SIZE
from fixtures.crypto_objects import (
    CIPHER_NAMES,
    CONTEXT,
    NO_AUDIT,
    cipher,
    ciphers,
    decrypt,
    encrypt,
    pieces,
    providers,
    stream_of,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SIZES = (0, 1, 65535, 65536, 65537, 10 * 65536)


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "format tests")


def _sealed_payload_size(plaintext_size: int) -> int:
    chunks = max(1, -(-plaintext_size // 65536))
    return plaintext_size + 16 * chunks


@pytest.mark.parametrize("cipher_name", CIPHER_NAMES)
@pytest.mark.parametrize("size", SIZES)
def test_round_trip_preserves_plaintext_of_boundary_sizes(cipher_name: str, size: int) -> None:
    data = os.urandom(size)
    keys = providers()

    async def main() -> bytes:
        blob = await encrypt(data, ["passphrase"], provider_map=keys, cipher_name=cipher_name)
        return await decrypt(blob, provider_map=keys, piece=7919)

    assert anyio.run(main) == data


@pytest.mark.parametrize("size", SIZES)
def test_payload_is_plaintext_plus_one_tag_per_64k_chunk(size: int) -> None:
    keys = providers()

    async def main() -> tuple[int, int]:
        encryptor = await new_encryptor(
            ["passphrase"], providers=keys, cipher=cipher(), context=CONTEXT, audit=NO_AUDIT
        )
        blob = encryptor.update(os.urandom(size)) + encryptor.finish()
        return len(blob), len(encryptor.header.raw)

    total, header = anyio.run(main)
    assert total - header == _sealed_payload_size(size)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=3 * 65536 + 17),
    cuts=st.lists(st.integers(min_value=1, max_value=70000), max_size=12),
    read_size=st.integers(min_value=1, max_value=3 * 65552),
    suite=st.sampled_from(CIPHER_NAMES),
)
def test_stream_round_trip_with_arbitrary_chunking_on_both_sides(
    data: bytes, cuts: list[int], read_size: int, suite: str
) -> None:
    aead = cipher(suite).aead(bytes(range(32)))
    encryptor = StreamEncryptor(aead)
    parts, offset = [], 0
    for cut in cuts:
        parts.append(data[offset : offset + cut])
        offset += cut
    parts.append(data[offset:])
    sealed = b"".join(encryptor.update(part) for part in parts) + encryptor.finish()
    decryptor = StreamDecryptor(aead)
    plain = b"".join(decryptor.update(piece) for piece in pieces(sealed, read_size)) + decryptor.finish()
    assert plain == data
    assert len(sealed) == _sealed_payload_size(len(data))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2 * 65536 + 3), piece=st.integers(min_value=1, max_value=100000))
def test_object_round_trip_with_arbitrary_input_chunking(data: bytes, piece: int) -> None:
    keys = providers()

    async def main() -> bytes:
        blob = await encrypt(pieces(data, piece) or [b""], ["passphrase"], provider_map=keys)
        return await decrypt(blob, provider_map=keys, piece=piece)

    assert anyio.run(main) == data


def test_encryptor_holds_back_the_last_chunk_until_finish() -> None:
    encryptor = StreamEncryptor(cipher().aead(bytes(32)), prefix=b"HEADER")
    assert encryptor.update(b"x" * 65536) == b"HEADER"
    assert encryptor.update(b"y" * 65536) != b""  # the first chunk is now known not to be last
    final = encryptor.finish()
    assert len(final) == 65536 + 16


def test_decryptor_releases_each_chunk_once_the_next_one_begins() -> None:
    aead = cipher().aead(bytes(32))
    encryptor = StreamEncryptor(aead)
    data = os.urandom(3 * 65536)
    sealed = encryptor.update(data) + encryptor.finish()
    decryptor = StreamDecryptor(aead)
    assert decryptor.update(sealed[:SEALED_CHUNK_SIZE]) == b""
    assert decryptor.update(sealed[SEALED_CHUNK_SIZE : SEALED_CHUNK_SIZE + 1]) == data[:65536]
    assert decryptor.update(sealed[SEALED_CHUNK_SIZE + 1 :]) == data[65536 : 2 * 65536]
    assert decryptor.finish() == data[2 * 65536 :]


def test_every_object_gets_a_fresh_data_key_and_salt() -> None:
    keys = providers()

    async def main() -> tuple[bytes, bytes]:
        first = await encrypt(b"same data", ["passphrase"], provider_map=keys)
        second = await encrypt(b"same data", ["passphrase"], provider_map=keys)
        return first, second

    first, second = anyio.run(main)
    header_a, header_b = parse_header(_header_bytes(first)), parse_header(_header_bytes(second))
    assert header_a.salt != header_b.salt
    assert first[len(header_a.raw) :] != second[len(header_b.raw) :]


def test_encrypt_and_decrypt_run_as_pipeline_transforms() -> None:
    data = os.urandom(5 * 65536 + 123)
    keys = providers()

    async def main() -> bytes:
        encryptor = await new_encryptor(
            ["passphrase"], providers=keys, cipher=cipher(), context=CONTEXT, audit=NO_AUDIT
        )
        stored = MemoryWriter()
        await Pipeline(
            iterable_source(pieces(data, 1000)), [Transform("encrypt", encryptor)], memory_sink(stored)
        ).run()
        assert stored.data is not None
        opened = await open_encrypted(stream_of(stored.data), providers=keys, ciphers=ciphers(), audit=NO_AUDIT)
        restored = MemoryWriter()
        await Pipeline(iterable_source(opened.rest), [Transform("decrypt", opened.codec)], memory_sink(restored)).run()
        assert restored.data is not None
        return restored.data

    assert anyio.run(main) == data


def test_the_header_carries_context_suite_and_stanza() -> None:
    keys = providers()
    blob = anyio.run(lambda: encrypt(b"abc", ["passphrase"], provider_map=keys, cipher_name="aes-256-gcm"))
    header = parse_header(_header_bytes(blob))
    assert blob.startswith(MAGIC)
    assert header.version == 1 and header.chunk_log2 == 16
    assert header.suite_id == cipher("aes-256-gcm").suite_id
    assert dict(header.context) == CONTEXT
    assert [s.scheme for s in header.stanzas] == ["passphrase"]


def test_context_encoding_is_canonical_whatever_the_insertion_order() -> None:
    forward = encode_context({"a": "1", "b": "2", "backup_id": "x"})
    backward = encode_context({"backup_id": "x", "b": "2", "a": "1"})
    assert forward == backward
    assert decode_context(forward) == {"a": "1", "b": "2", "backup_id": "x"}


@given(st.dictionaries(st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True), st.text(max_size=40), max_size=8))
def test_context_encoding_round_trips(context: dict[str, str]) -> None:
    assert decode_context(encode_context(context)) == context


@pytest.mark.parametrize("key", ["", "Upper", "with space", "x" * 65, "-leading"])
def test_context_keys_outside_the_alphabet_are_refused(key: str) -> None:
    with pytest.raises(ConfigError):
        encode_context({key: "v"})


def test_non_canonical_context_on_read_is_an_integrity_error() -> None:
    unsorted = b"\x02" + b"\x01b\x00\x01x" + b"\x01a\x00\x01y"
    with pytest.raises(IntegrityError, match="ascending"):
        decode_context(unsorted)


def test_header_is_read_from_a_stream_in_tiny_pieces() -> None:
    keys = providers()
    blob = anyio.run(lambda: encrypt(os.urandom(1000), ["passphrase"], provider_map=keys))

    async def main() -> tuple[int, bytes]:
        header, rest = await read_header(stream_of(blob, 3))
        return len(header.raw), rest

    length, rest = anyio.run(main)
    assert blob[length : length + len(rest)] == rest
    assert len(rest) < 3


def test_an_oversized_header_is_refused_without_reading_on() -> None:
    stanza = b"\x01a" + (2048).to_bytes(2, "big") + b"k" * 2048 + b"\x00" + (8192).to_bytes(2, "big") + b"w" * 8192
    start = MAGIC + bytes([1, 1, 16]) + bytes(32) + b"\x00\x01\x00" + b"\x10"
    consumed = 0

    async def endless() -> object:
        nonlocal consumed
        yield start
        consumed += len(start)
        while True:
            consumed += len(stanza)
            yield stanza

    async def main() -> None:
        await read_header(endless())  # type: ignore[arg-type]

    with pytest.raises(IntegrityError, match="longer than"):
        anyio.run(main)
    assert consumed < MAX_HEADER_SIZE + 2 * len(stanza)


def test_unknown_key_scheme_on_encrypt_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown key provider 'nope'"):
        anyio.run(lambda: encrypt(b"x", ["nope:key"], provider_map=providers()))


def test_the_same_key_twice_is_a_config_error(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="twice"):
        anyio.run(lambda: encrypt(b"x", ["local:/a", "local:/a"], provider_map=providers()))


def test_no_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no key"):
        anyio.run(lambda: encrypt(b"x", [], provider_map=providers()))


def _header_bytes(blob: bytes) -> bytes:
    async def main() -> bytes:
        header, _ = await read_header(stream_of(blob))
        return header.raw

    return anyio.run(main)
