"""Every kind of bad input to the decryptor ends in a typed error, and no plaintext follows a bad chunk.

Objects here are 10 full chunks plus a short last one (ChaCha20-Poly1305, passphrase key, cheap KDF).
"""

from __future__ import annotations

import os

import anyio
import pytest
from backstream import BackstreamError, IntegrityError, KeyProviderError, open_encrypted
from backstream.crypto import SEALED_CHUNK_SIZE, StreamDecryptor, chunk_nonce, parse_header, read_header
from fixtures.crypto_objects import CONTEXT, NO_AUDIT, Outcome, cipher, decrypt_outcome, encrypt, providers, stream_of

DATA = os.urandom(10 * 65536 + 1000)
CHUNKS = 11


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "tamper tests")


@pytest.fixture(scope="module")
def blob() -> bytes:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BACKSTREAM_PASSPHRASE", "tamper tests")
        return anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=providers()))


def _split(blob: bytes) -> tuple[bytes, list[bytes]]:
    async def main() -> int:
        header, _ = await read_header(stream_of(blob))
        return len(header.raw)

    length = anyio.run(main)
    payload = blob[length:]
    return blob[:length], [payload[i : i + SEALED_CHUNK_SIZE] for i in range(0, len(payload), SEALED_CHUNK_SIZE)]


def _open(blob: bytes, **kwargs: object) -> Outcome:
    return anyio.run(
        lambda: decrypt_outcome(blob, provider_map=providers(), piece=SEALED_CHUNK_SIZE, **kwargs)  # type: ignore[arg-type]
    )


def _flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    return data[:offset] + bytes([data[offset] ^ (1 << bit)]) + data[offset + 1 :]


def _assert_fails_at_chunk(outcome: Outcome, index: int) -> None:
    assert isinstance(outcome.error, IntegrityError)
    assert "\n" not in str(outcome.error)
    assert outcome.plaintext == DATA[: index * 65536]  # nothing at or after the bad chunk


def test_the_intact_object_decrypts(blob: bytes) -> None:
    outcome = _open(blob)
    assert outcome.error is None and outcome.plaintext == DATA


def test_wrong_passphrase_is_a_one_line_key_provider_error(blob: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "not the passphrase")
    with pytest.raises(KeyProviderError, match=r"^wrong passphrase or key: no stanza could be unwrapped") as caught:
        _open(blob)
    assert "\n" not in str(caught.value)


def test_wrong_expected_context_is_refused(blob: bytes) -> None:
    outcome = _open(blob, expect_context={"backup_id": "another-backup"})
    assert isinstance(outcome.error, IntegrityError)
    assert "wrong object context: backup_id" in str(outcome.error)
    assert outcome.plaintext == b""


def test_the_right_expected_context_is_accepted(blob: bytes) -> None:
    outcome = _open(blob, expect_context={"backup_id": CONTEXT["backup_id"], "database": "shop"})
    assert outcome.error is None and outcome.plaintext == DATA


@pytest.mark.parametrize(
    ("region", "offset"),
    [("version", 8), ("suite", 9), ("chunk size", 10), ("salt", 20), ("context", 60)],
)
def test_a_flipped_bit_in_the_preamble_is_an_integrity_error(blob: bytes, region: str, offset: int) -> None:
    outcome = _open(_flip(blob, offset))
    assert isinstance(outcome.error, IntegrityError), region
    assert outcome.plaintext == b""


def test_a_flipped_bit_in_the_header_mac_is_an_integrity_error(blob: bytes) -> None:
    header, _ = _split(blob)
    outcome = _open(_flip(blob, len(header) - 1))
    assert isinstance(outcome.error, IntegrityError)
    assert "header authentication failed" in str(outcome.error)


def test_a_flipped_bit_anywhere_in_the_header_is_a_typed_error_and_releases_nothing(blob: bytes) -> None:
    header, _ = _split(blob)
    for offset in range(len(header)):
        for bit in (0, 7):
            try:
                outcome = _open(_flip(blob, offset, bit))
            except KeyProviderError:  # a modified stanza no longer unwraps (wrapped key, KDF salt)
                continue
            assert isinstance(outcome.error, BackstreamError), (offset, bit)
            assert outcome.plaintext == b"", (offset, bit)


@pytest.mark.parametrize(("where", "index"), [("first", 0), ("middle", 5), ("last", CHUNKS - 1)])
def test_a_flipped_bit_in_a_chunk_fails_at_that_chunk(blob: bytes, where: str, index: int) -> None:
    header, chunks = _split(blob)
    offset = len(header) + index * SEALED_CHUNK_SIZE + len(chunks[index]) // 2
    _assert_fails_at_chunk(_open(_flip(blob, offset)), index)


def test_a_flipped_bit_in_a_tag_fails_at_that_chunk(blob: bytes) -> None:
    header, _ = _split(blob)
    offset = len(header) + 3 * SEALED_CHUNK_SIZE + SEALED_CHUNK_SIZE - 1
    _assert_fails_at_chunk(_open(_flip(blob, offset)), 3)


@pytest.mark.parametrize("cut", [1, 15, 16, 17, 500])
def test_a_truncated_final_chunk_is_refused(blob: bytes, cut: int) -> None:
    outcome = _open(blob[:-cut])
    _assert_fails_at_chunk(outcome, CHUNKS - 1)


def test_a_missing_final_chunk_is_reported_as_truncation(blob: bytes) -> None:
    header, chunks = _split(blob)
    outcome = _open(header + b"".join(chunks[:-1]))
    _assert_fails_at_chunk(outcome, CHUNKS - 2)
    assert "before the final chunk" in str(outcome.error)


def test_an_object_cut_inside_a_full_chunk_is_refused(blob: bytes) -> None:
    header, _ = _split(blob)
    outcome = _open(blob[: len(header) + 4 * SEALED_CHUNK_SIZE + 100])
    _assert_fails_at_chunk(outcome, 4)


def test_a_dropped_chunk_is_refused(blob: bytes) -> None:
    header, chunks = _split(blob)
    outcome = _open(header + b"".join(chunks[:4] + chunks[5:]))
    _assert_fails_at_chunk(outcome, 4)


def test_swapped_chunks_are_refused(blob: bytes) -> None:
    header, chunks = _split(blob)
    swapped = [*chunks[:2], chunks[3], chunks[2], *chunks[4:]]
    _assert_fails_at_chunk(_open(header + b"".join(swapped)), 2)


def test_a_duplicated_chunk_is_refused(blob: bytes) -> None:
    header, chunks = _split(blob)
    _assert_fails_at_chunk(_open(header + b"".join(chunks[:3] + chunks[2:])), 3)


@pytest.mark.parametrize("extra", [b"x", b"\x00" * 16, os.urandom(SEALED_CHUNK_SIZE + 5)])
def test_trailing_bytes_after_the_final_chunk_are_refused(blob: bytes, extra: bytes) -> None:
    outcome = _open(blob + extra)
    assert isinstance(outcome.error, IntegrityError)
    assert outcome.plaintext == DATA[: len(outcome.plaintext)]
    assert len(outcome.plaintext) <= (CHUNKS - 1) * 65536


def test_bytes_after_a_full_final_chunk_are_named_as_such() -> None:
    aead = cipher().aead(bytes(32))
    sealed = aead.encrypt(chunk_nonce(0, last=True), b"a" * 65536, None)
    decryptor = StreamDecryptor(aead)
    with pytest.raises(IntegrityError, match="after the final chunk"):
        decryptor.update(sealed + b"more")


def test_a_header_spliced_from_another_object_fails_at_the_first_chunk(blob: bytes) -> None:
    other = anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=providers()))
    other_header, _ = _split(other)
    _, chunks = _split(blob)
    outcome = _open(other_header + b"".join(chunks))
    _assert_fails_at_chunk(outcome, 0)


def test_a_stanza_spliced_from_another_object_fails_the_header_mac(blob: bytes) -> None:
    other = anyio.run(lambda: encrypt(DATA, ["passphrase"], provider_map=providers()))
    mine, theirs = parse_header(_split(blob)[0]), parse_header(_split(other)[0])
    stanza_bytes = theirs.raw[len(theirs.preamble) : -32]  # count byte + the other object's stanza
    spliced = mine.preamble + stanza_bytes + mine.mac + blob[len(mine.raw) :]
    outcome = _open(spliced)
    assert isinstance(outcome.error, IntegrityError)
    assert "header authentication failed" in str(outcome.error)
    assert outcome.plaintext == b""


def test_an_unknown_version_is_refused_before_any_key_work(blob: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKSTREAM_PASSPHRASE")  # no passphrase needed to refuse it
    outcome = _open(blob[:8] + b"\x02" + blob[9:])
    assert isinstance(outcome.error, IntegrityError)
    assert "unsupported encrypted format version 2" in str(outcome.error)


def test_an_unknown_suite_is_refused_before_any_key_work(blob: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BACKSTREAM_PASSPHRASE")
    outcome = _open(blob[:9] + b"\x09" + blob[10:])
    assert isinstance(outcome.error, IntegrityError)
    assert "unknown cipher suite 9" in str(outcome.error)


def test_another_chunk_size_is_refused(blob: bytes) -> None:
    outcome = _open(blob[:10] + b"\x11" + blob[11:])
    assert isinstance(outcome.error, IntegrityError)
    assert "chunk size" in str(outcome.error)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "input is empty"),
        (b"(\xb5/\xfd plain zstd, not encrypted", "bad magic"),
        (b"\x89BSE\r\n\x1a\n\x01\x01\x10" + bytes(10), "ends inside the header"),
    ],
)
def test_not_an_encrypted_object_is_refused(data: bytes, message: str) -> None:
    outcome = _open(data)
    assert isinstance(outcome.error, IntegrityError)
    assert message in str(outcome.error)


def test_a_header_without_payload_is_refused(blob: bytes) -> None:
    header, _ = _split(blob)
    outcome = _open(header)
    assert isinstance(outcome.error, IntegrityError)
    assert "no payload" in str(outcome.error)


def test_an_empty_final_chunk_after_data_is_refused() -> None:
    aead = cipher().aead(bytes(32))
    crafted = aead.encrypt(chunk_nonce(0, last=False), b"a" * 65536, None) + aead.encrypt(
        chunk_nonce(1, last=True), b"", None
    )
    decryptor = StreamDecryptor(aead)
    released = decryptor.update(crafted)
    with pytest.raises(IntegrityError, match="empty final chunk"):
        decryptor.finish()
    assert released == b"a" * 65536


def test_a_failed_decryptor_keeps_failing() -> None:
    aead = cipher().aead(bytes(32))
    decryptor = StreamDecryptor(aead)
    with pytest.raises(IntegrityError):
        decryptor.update(os.urandom(2 * SEALED_CHUNK_SIZE))
    with pytest.raises(IntegrityError):
        decryptor.update(b"x")
    with pytest.raises(IntegrityError):
        decryptor.finish()


def test_no_plaintext_is_released_before_the_header_verifies(blob: bytes) -> None:
    header, _ = _split(blob)

    async def main() -> None:
        await open_encrypted(
            stream_of(_flip(blob, len(header) - 5)), providers=providers(), ciphers=[cipher()], audit=NO_AUDIT
        )

    with pytest.raises(IntegrityError, match="header authentication failed"):
        anyio.run(main)
