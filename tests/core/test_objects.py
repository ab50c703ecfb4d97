"""The object path (``backstream.repository.objects``): what every stored object goes through.

Backups, WAL segments and binlogs are all stored by ``store_object`` and read back by
``read_object``/``open_object``; these tests pin what that path promises on a local repository
with the built-in plugins: round trips in every codec, with and without encryption, and a read
that refuses (IntegrityError, nothing committed) a tampered, truncated, swapped or foreign object.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from backstream import IntegrityError, KeyProviderError, Plugins, SourceError, file_sink, iterable_source
from backstream.jobs import KeyOptions
from backstream.jobs.objects import PluginCodecs
from backstream.pipeline import Transform
from backstream.repository import ObjectRecord, Repository
from backstream.repository.objects import Digest, open_object, read_object, store_object

FAST_KDF = {"kdf.t": "1", "kdf.m": "1024", "kdf.p": "1"}
DATA = b"".join(b"row %07d of the object path test, some text to compress\n" % i for i in range(40_000))
CONTEXT = {"kind": "test", "object": "sample"}


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    plugins = Plugins.load()
    return anyio.run(Repository.init, plugins.open_storage(str(tmp_path / "repo")))


@pytest.fixture
def _passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "object path")


def codecs(*key_refs: str) -> PluginCodecs:
    return PluginCodecs(Plugins.load(), key_refs=key_refs, keys=KeyOptions(provider_options=FAST_KDF))


def store(
    repository: Repository, data: bytes = DATA, *, codec: str = "zstd", key_refs: tuple[str, ...] = ()
) -> ObjectRecord:
    async def main() -> ObjectRecord:
        pieces = [data[i : i + 50_000] for i in range(0, len(data), 50_000)]
        return await store_object(
            repository,
            f"test/sample.{codec}",
            iterable_source(pieces),
            name="sample",
            codecs=codecs(*key_refs),
            codec=codec,
            context=CONTEXT,
        )

    return anyio.run(main)


def read(repository: Repository, record: ObjectRecord, *, context: dict[str, str] = CONTEXT, **kwargs: object) -> bytes:
    async def main() -> bytes:
        out = bytearray()
        async with open_object(repository, record, codecs=codecs(), context=context, **kwargs) as chunks:  # type: ignore[arg-type]
            async for chunk in chunks:
                out += chunk
        return bytes(out)

    return anyio.run(main)


def stored_file(repository: Repository, record: ObjectRecord) -> Path:
    return Path(repository.url.removeprefix("file://")) / record.path


@pytest.mark.parametrize("codec", ["zstd", "lz4", "gzip", "none"])
def test_an_object_round_trips_in_every_codec(repository: Repository, codec: str) -> None:
    record = store(repository, codec=codec)
    assert (record.codec, record.plaintext_size, record.cipher, record.key_refs) == (codec, len(DATA), None, ())
    blob = stored_file(repository, record).read_bytes()
    assert (len(blob), hashlib.sha256(blob).hexdigest()) == (record.stored_size, record.stored_sha256)
    assert read(repository, record) == DATA


@pytest.mark.usefixtures("_passphrase")
def test_an_encrypted_object_round_trips_and_records_its_cipher_and_keys(repository: Repository) -> None:
    record = store(repository, key_refs=("passphrase",))
    assert record.cipher and record.key_refs == ("passphrase",)
    assert b"row 0000001" not in stored_file(repository, record).read_bytes()
    assert read(repository, record) == DATA


def test_an_empty_object_round_trips(repository: Repository) -> None:
    record = store(repository, b"")
    assert record.plaintext_size == 0
    assert read(repository, record) == b""


def test_taps_see_the_plaintext_in_the_same_pass(repository: Repository) -> None:
    digest = Digest()

    async def main() -> ObjectRecord:
        return await store_object(
            repository,
            "test/tapped.zst",
            iterable_source([DATA]),
            name="tapped",
            codecs=codecs(),
            codec="zstd",
            context=CONTEXT,
            taps=[Transform("sha256", digest)],
        )

    anyio.run(main)
    assert (digest.size, digest.hexdigest()) == (len(DATA), hashlib.sha256(DATA).hexdigest())


@pytest.mark.usefixtures("_passphrase")
def test_the_record_says_how_long_each_stage_worked_and_keeps_it_through_the_manifest(
    repository: Repository,
) -> None:
    record = store(repository, key_refs=("passphrase",))
    assert list(record.stage_seconds) == ["source", "compress:zstd", "encrypt", "sink"]
    assert all(seconds >= 0 for seconds in record.stage_seconds.values())
    assert ObjectRecord.from_dict(record.to_dict()) == record


def test_a_record_without_stage_timings_reads_as_empty_and_writes_no_field() -> None:
    old = {
        "name": "dump",
        "path": "backups/x/data/dump.sql.zst",
        "stored_size": 1,
        "stored_sha256": "0" * 64,
        "plaintext_size": 1,
        "codec": "zstd",
        "codec_options": {},
        "cipher": None,
        "key_refs": [],
    }
    record = ObjectRecord.from_dict(old)
    assert record.stage_seconds == {}
    assert record.to_dict() == old  # an older manifest's object is written back as it was


def test_a_flipped_byte_is_refused_before_the_stream_ends(repository: Repository) -> None:
    record = store(repository)
    path = stored_file(repository, record)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(IntegrityError):
        read(repository, record)


def test_a_truncated_object_is_refused(repository: Repository) -> None:
    record = store(repository)
    path = stored_file(repository, record)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IntegrityError, match="truncated"):
        read(repository, record)


def test_bytes_appended_to_an_object_are_refused(repository: Repository) -> None:
    record = store(repository)
    path = stored_file(repository, record)
    path.write_bytes(path.read_bytes() + b"more")
    with pytest.raises(IntegrityError, match="larger than"):
        read(repository, record)


def test_another_objects_bytes_with_a_matching_record_fail_the_plaintext_check(repository: Repository) -> None:
    """A stored object swapped for another whose size and sha256 were also forged into the record
    (only the plaintext sha256, kept elsewhere, is left to tell): refused."""
    record = store(repository)
    other = store(repository, DATA.replace(b"row", b"ROW"))
    assert other.path == record.path  # the second store replaced the first object
    forged = ObjectRecord(**{**record.__dict__, "stored_size": other.stored_size, "stored_sha256": other.stored_sha256})
    assert read(repository, forged) == DATA.replace(b"row", b"ROW")  # what a size/sha-only check lets through
    with pytest.raises(IntegrityError, match="plaintext sha256"):
        read(repository, forged, plaintext_sha256=hashlib.sha256(DATA).hexdigest())


def test_a_wrong_plaintext_size_in_the_record_is_refused(repository: Repository) -> None:
    record = store(repository)
    wrong = ObjectRecord(**{**record.__dict__, "plaintext_size": record.plaintext_size - 1})
    with pytest.raises(IntegrityError, match="decodes to more than"):
        read(repository, wrong)


@pytest.mark.usefixtures("_passphrase")
def test_an_encrypted_object_read_under_another_context_is_refused(repository: Repository) -> None:
    record = store(repository, key_refs=("passphrase",))
    with pytest.raises(IntegrityError):
        read(repository, record, context={**CONTEXT, "object": "another"})


@pytest.mark.usefixtures("_passphrase")
def test_the_wrong_passphrase_is_one_key_error(repository: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    record = store(repository, key_refs=("passphrase",))
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "not it")
    with pytest.raises(KeyProviderError, match="wrong passphrase or key"):
        read(repository, record)


def test_a_failed_read_commits_nothing_to_its_sink(repository: Repository, tmp_path: Path) -> None:
    record = store(repository)
    path = stored_file(repository, record)
    path.write_bytes(path.read_bytes()[:-1])
    target = tmp_path / "out"

    async def main() -> None:
        await read_object(repository, record, file_sink(target), codecs=codecs(), context=CONTEXT)

    with pytest.raises(IntegrityError):
        anyio.run(main)
    assert not target.exists()
    assert os.listdir(tmp_path) == ["repo"]  # no temporary file left either


def test_a_source_that_fails_halfway_leaves_no_object(repository: Repository) -> None:
    @asynccontextmanager
    async def failing() -> AsyncIterator[AsyncIterator[bytes]]:
        async def chunks() -> AsyncIterator[bytes]:
            yield DATA[:100_000]
            raise SourceError("the dump tool died")

        yield chunks()

    async def main() -> None:
        await store_object(
            repository, "test/failed.zst", failing(), name="failed", codecs=codecs(), codec="zstd", context=CONTEXT
        )

    with pytest.raises(SourceError, match="died"):
        anyio.run(main)
    assert anyio.run(repository.storage.list, "test/") == []


def test_a_consumer_that_stops_early_does_not_hang(repository: Repository) -> None:
    record = store(repository)

    async def main() -> bytes:
        with anyio.fail_after(10):
            async with open_object(repository, record, codecs=codecs(), context=CONTEXT) as chunks:
                async for chunk in chunks:
                    return chunk
        return b""

    assert DATA.startswith(anyio.run(main))
