"""The ``fsspec`` storage plugin on local files, fsspec memory and a real S3 endpoint (moto on loopback).

Covers round trips, atomic commit under failing sources, failing storage and cancellation, metadata
calls, error translation, an unreachable endpoint, and plugin registration.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import fsspec
import pytest
from backstream import (
    CHUNK_SIZE,
    ConfigError,
    MissingDependencyError,
    Pipeline,
    Plugins,
    Storage,
    StorageError,
    iterable_source,
    make_plugin_manager,
)
from backstream_plugins.storage import fsspec_store
from backstream_plugins.storage.fsspec_store import S3_MIN_PART, TEMP_SUFFIX
from fixtures.s3 import S3Bucket, closed_port
from hypothesis import given, settings
from hypothesis import strategies as st

MODULE = "backstream_plugins.storage.fsspec_store"
MiB = 2**20
PART = S3_MIN_PART  # the smallest part S3 allows, so that a few MiB make a multipart upload
BACKENDS = ["path", "file-url", "memory", "s3"]


def _plugins() -> Plugins:
    """A plugin manager holding just this plugin (the other built-ins are not its concern)."""
    return Plugins(make_plugin_manager(autoload=False, defaults=(MODULE,)))


@dataclass
class Backend:
    """A storage under test, plus independent views of what is really stored underneath it."""

    name: str
    storage: Storage
    stored: Callable[[], list[str]]
    """Every object below the storage root (temporary ones too), by the backend's own means."""
    uploads: Callable[[], list[Any]]
    """Unfinished multipart uploads (S3 only; empty elsewhere)."""
    break_root: Callable[[], None]
    """Wipe the storage root out from under a running write, leaving it present but empty."""


def _local_backend(name: str, root: Path, url: str) -> Backend:
    def stored() -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def break_root() -> None:
        shutil.rmtree(root)
        root.mkdir()

    return Backend(name, _plugins().open_storage(url), stored, list, break_root)


def _memory_backend() -> Backend:
    root = f"/bs-test-{uuid.uuid4().hex}"
    memory = fsspec.filesystem("memory")

    def stored() -> list[str]:
        return sorted(key[len(root) + 1 :] for key in memory.store if key.startswith(root + "/"))

    def break_root() -> None:
        for key in [key for key in memory.store if key.startswith(root + "/")]:
            del memory.store[key]

    return Backend("memory", _plugins().open_storage(f"memory://{root}"), stored, list, break_root)


def _s3_backend(bucket: S3Bucket) -> Backend:
    def stored() -> list[str]:
        return [key[len(bucket.prefix) + 1 :] for key in bucket.keys()]

    def break_root() -> None:
        bucket.remove()
        bucket.create()

    storage = _plugins().open_storage(bucket.url, part_size=PART, **bucket.storage_options)
    return Backend("s3", storage, stored, bucket.multipart_uploads, break_root)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    root = tmp_path / "repo"
    if request.param == "path":
        yield _local_backend("path", root, str(root))
    elif request.param == "file-url":
        yield _local_backend("file-url", root, f"file://{root}")
    elif request.param == "memory":
        memory = _memory_backend()
        yield memory
        memory.break_root()  # fsspec's memory filesystem lives as long as the process
    else:
        yield _s3_backend(request.getfixturevalue("s3_bucket"))


def _data(size: int, seed: int = 0) -> bytes:
    """Reproducible bytes that change every 2 KiB (a shifted or dropped block shows)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64
        counter += 1
    return bytes(out[:size])


async def _read(storage: Storage, path: str) -> bytes:
    out = bytearray()
    async with storage.open_read(path) as chunks:
        async for chunk in chunks:
            assert 0 < len(chunk) <= CHUNK_SIZE
            out += chunk
    return bytes(out)


async def _failing_source(data: bytes, then: Callable[[], Any] | None = None) -> AsyncIterator[bytes]:
    """Yield ``data``; then run ``then`` in a thread, or raise like a dump tool that died."""
    for start in range(0, len(data), CHUNK_SIZE):
        yield data[start : start + CHUNK_SIZE]
    if then is not None:
        await anyio.to_thread.run_sync(then)
        yield b"after the break" * 50_000
        return
    raise RuntimeError("the dump tool died")


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_written_stream_reads_back_identical_in_chunks_of_at_most_64_kib(backend: Backend) -> None:
    data = _data(3 * PART + 12345)  # > 15 MiB: four parts on S3
    result = await Pipeline(iterable_source([data]), [], backend.storage.open_write("backups/b1/data.bin")).run()
    assert result.bytes_out == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert await _read(backend.storage, "backups/b1/data.bin") == data
    assert backend.stored() == ["backups/b1/data.bin"]
    assert backend.uploads() == []


@pytest.mark.anyio
async def test_a_large_s3_object_is_stored_as_a_multipart_upload(s3_bucket: S3Bucket) -> None:
    backend = _s3_backend(s3_bucket)
    data = _data(2 * PART + 1)
    async with backend.storage.open_write("big") as writer:
        for start in range(0, len(data), CHUNK_SIZE):
            await writer.write(data[start : start + CHUNK_SIZE])
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=f"{s3_bucket.prefix}/big")
    assert head["ETag"].strip('"').endswith("-3")  # three parts
    assert await _read(backend.storage, "big") == data


@pytest.mark.anyio
async def test_an_empty_stream_stores_an_empty_object(backend: Backend) -> None:
    async with backend.storage.open_write("empty"):
        pass
    assert await backend.storage.size("empty") == 0
    assert await _read(backend.storage, "empty") == b""


@pytest.mark.anyio
async def test_small_objects_round_trip_with_write_bytes_and_read_bytes(backend: Backend) -> None:
    await backend.storage.write_bytes("backups/b1/manifest.json", b'{"status": "complete"}')
    assert await backend.storage.read_bytes("backups/b1/manifest.json") == b'{"status": "complete"}'
    assert backend.stored() == ["backups/b1/manifest.json"]


@settings(max_examples=25, deadline=None)
@given(
    data=st.binary(max_size=300_000),
    cuts=st.lists(st.integers(min_value=0, max_value=300_000), max_size=12),
)
def test_any_chunking_of_any_data_round_trips_through_memory_and_local_files(data: bytes, cuts: list[int]) -> None:
    bounds = sorted({0, len(data), *(cut for cut in cuts if cut <= len(data))})
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]

    async def check(storage: Storage) -> None:
        async with storage.open_write("obj") as writer:
            for piece in pieces:
                await writer.write(piece)
        assert await _read(storage, "obj") == data

    with tempfile.TemporaryDirectory() as directory:
        anyio.run(check, _plugins().open_storage(directory))
    memory = _memory_backend()
    anyio.run(check, memory.storage)
    memory.break_root()


@pytest.mark.anyio
async def test_concurrent_reads_of_one_object_each_see_all_of_it(backend: Backend) -> None:
    data = _data(3 * MiB + 7)
    await backend.storage.write_bytes("shared", data)
    results: list[bytes] = []

    async def read() -> None:
        results.append(await _read(backend.storage, "shared"))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(read)
    assert results == [data, data, data]


# --- atomic commit ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_source_failing_mid_stream_leaves_no_object_and_no_upload(backend: Backend) -> None:
    data = _data(PART + 3 * MiB)  # past the first S3 part, so an upload is really in progress
    with pytest.raises(RuntimeError, match="dump tool died"):
        await Pipeline(iterable_source(_failing_source(data)), [], backend.storage.open_write("backups/b1/data")).run()
    assert backend.stored() == []
    assert backend.uploads() == []
    assert not await backend.storage.exists("backups/b1/data")


@pytest.mark.anyio
async def test_a_failed_overwrite_keeps_the_previous_object_intact(backend: Backend) -> None:
    await backend.storage.write_bytes("manifest.json", b"old")
    with pytest.raises(RuntimeError):
        await Pipeline(
            iterable_source(_failing_source(_data(2 * MiB))), [], backend.storage.open_write("manifest.json")
        ).run()
    assert await backend.storage.read_bytes("manifest.json") == b"old"
    assert backend.stored() == ["manifest.json"]


@pytest.mark.anyio
async def test_a_cancelled_write_leaves_no_object_and_no_upload(backend: Backend) -> None:
    data = _data(PART + 2 * MiB)
    with anyio.CancelScope() as scope:
        async with backend.storage.open_write("cancelled") as writer:
            for start in range(0, len(data), CHUNK_SIZE):
                await writer.write(data[start : start + CHUNK_SIZE])
            scope.cancel()
            await anyio.sleep(1)  # cancelled here, inside the writing block
    assert scope.cancelled_caught
    assert backend.stored() == []
    assert backend.uploads() == []


@pytest.mark.anyio
async def test_storage_wiped_during_a_write_raises_storage_error_and_leaves_no_object(backend: Backend) -> None:
    """The root (directory, memory prefix, bucket) is emptied and re-created while the write runs."""
    data = _data(PART + 2 * MiB)

    def wipe() -> None:
        if backend.name == "s3":
            _wait_for(lambda: backend.uploads() != [])  # the multipart upload really started
        backend.break_root()

    with pytest.raises(StorageError, match="cannot write"):
        await Pipeline(
            iterable_source(_failing_source(data, then=wipe)), [], backend.storage.open_write("b1/data")
        ).run()
    assert backend.stored() == []
    assert backend.uploads() == []


def _wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@pytest.mark.anyio
async def test_a_failed_local_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    storage = _plugins().open_storage(str(tmp_path))
    with pytest.raises(RuntimeError):
        await Pipeline(iterable_source(_failing_source(_data(MiB))), [], storage.open_write("a/b")).run()
    assert [p.name for p in (tmp_path / "a").iterdir()] == []


@pytest.mark.anyio
async def test_an_in_flight_local_write_is_a_hidden_temporary_file_beside_the_target(tmp_path: Path) -> None:
    storage = _plugins().open_storage(str(tmp_path))
    async with storage.open_write("dir/obj") as writer:
        await writer.write(_data(300 * 1024))  # more than one batch
        names = [p.name for p in (tmp_path / "dir").iterdir()]
        assert len(names) == 1 and names[0].startswith(".obj.") and names[0].endswith(TEMP_SUFFIX)
    assert [p.name for p in (tmp_path / "dir").iterdir()] == ["obj"]


# --- metadata -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_exists_size_list_and_delete_see_stored_objects(backend: Backend) -> None:
    storage = backend.storage
    for path, size in [
        ("backups/b1/data", 1000),
        ("backups/b1/manifest.json", 10),
        ("backups/b10/data", 3),
        ("top", 1),
    ]:
        await storage.write_bytes(path, b"x" * size)
    assert await storage.exists("backups/b1/data")
    assert not await storage.exists("backups/b1")  # a directory is not an object
    assert not await storage.exists("backups/b3/data")
    assert await storage.size("backups/b1/data") == 1000
    assert await storage.list("") == ["backups/b1/data", "backups/b1/manifest.json", "backups/b10/data", "top"]
    assert await storage.list("backups/b1") == ["backups/b1/data", "backups/b1/manifest.json"]
    assert await storage.list("backups/b1/") == ["backups/b1/data", "backups/b1/manifest.json"]
    assert await storage.list("nothing/here") == []
    await storage.delete("backups/b1/data")
    assert not await storage.exists("backups/b1/data")
    assert await storage.list("backups") == ["backups/b1/manifest.json", "backups/b10/data"]


@pytest.mark.anyio
async def test_deleting_a_missing_object_is_not_an_error(backend: Backend) -> None:
    await backend.storage.delete("never/written")


@pytest.mark.anyio
async def test_a_missing_object_raises_storage_error_not_found(backend: Backend) -> None:
    with pytest.raises(StorageError, match="not found"):
        async with backend.storage.open_read("missing"):
            pass
    with pytest.raises(StorageError, match="not found"):
        await backend.storage.size("missing")
    with pytest.raises(StorageError, match="not found"):
        await backend.storage.read_bytes("missing")


@pytest.mark.parametrize("path", ["", "/abs", "a/../b", "a//b", "./a", "a/"])
def test_paths_must_be_relative_and_normal(path: str, tmp_path: Path) -> None:
    storage = _plugins().open_storage(str(tmp_path))
    with pytest.raises(ConfigError, match="invalid storage path"):
        anyio.run(storage.exists, path)


# --- S3 specifics ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_missing_bucket_raises_storage_error_not_found(s3_bucket: S3Bucket) -> None:
    storage = _plugins().open_storage(f"s3://{s3_bucket.name}-nope/repo", **s3_bucket.storage_options)
    with pytest.raises(StorageError, match="not found"):
        await storage.write_bytes("x", b"data")


@pytest.mark.anyio
async def test_an_unreachable_s3_endpoint_fails_quickly_with_storage_error(aws_env: Any) -> None:
    storage = _plugins().open_storage("s3://bucket/repo", endpoint_url=f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    with pytest.raises(StorageError, match=r"(?i)could not connect") as raised:
        await storage.exists("manifest.json")
    assert "\n" not in str(raised.value)
    with pytest.raises(StorageError, match=r"(?i)could not connect"):
        async with storage.open_write("data") as writer:
            await writer.write(b"x")
    assert time.monotonic() - started < 20


@pytest.mark.anyio
async def test_the_s3_endpoint_can_come_from_the_aws_environment(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_bucket.server.endpoint_url)
    storage = _plugins().open_storage(s3_bucket.url)
    await storage.write_bytes("hello", b"world")
    assert s3_bucket.keys() == [f"{s3_bucket.prefix}/hello"]


def test_part_size_below_the_s3_minimum_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="part_size"):
        _plugins().open_storage("s3://bucket/repo", part_size=MiB)


# --- registration ---------------------------------------------------------------------------------


def test_the_plugin_registers_a_catch_all_storage_and_an_s3_storage() -> None:
    storages = _plugins().storages()
    assert storages.names() == ["fsspec", "fsspec-s3"]
    assert storages.get("fsspec").protocols == frozenset({"*"})
    assert storages.get("fsspec-s3").protocols == frozenset({"s3", "s3a"})
    assert all(entry.available for entry in storages)


def test_without_s3fs_the_s3_storage_is_unavailable_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)
    plugins = _plugins()
    entry = plugins.storages().entry("fsspec-s3")
    assert not entry.available
    assert "pip install 'backstream[s3]'" in (entry.unavailable_reason or "")
    with pytest.raises(MissingDependencyError, match=r"backstream\[s3\]"):
        plugins.open_storage("s3://bucket/repo")
    assert plugins.storages().entry("fsspec").available


def test_an_unknown_protocol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nosuchproto"):
        _plugins().open_storage("nosuchproto://x/y")


@pytest.mark.anyio
async def test_s3_parts_grow_so_that_huge_objects_stay_within_the_part_limit(
    s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsspec_store, "PART_GROWTH_EVERY", 2)  # double every 2 parts instead of every 1000
    storage = _s3_backend(s3_bucket).storage
    data = _data(4 * PART + 2 * PART + 1)  # parts: 5, 5, 10 MiB, then the rest
    async with storage.open_write("grown") as writer:
        for start in range(0, len(data), 4 * CHUNK_SIZE):
            await writer.write(data[start : start + 4 * CHUNK_SIZE])
    key = f"{s3_bucket.prefix}/grown"
    sizes = [
        s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=key, PartNumber=n)["ContentLength"] for n in (1, 2, 3)
    ]
    assert sizes[0] < 2 * PART and sizes[1] < 2 * PART and sizes[2] >= 2 * PART
    assert await _read(storage, "grown") == data


def test_errors_never_show_the_password_of_a_storage_url() -> None:
    with pytest.raises(StorageError) as raised:
        _plugins().open_storage(f"ftp://backup:hunter2@127.0.0.1:{closed_port()}/repo")
    assert "hunter2" not in str(raised.value)
    assert "ftp://backup@127.0.0.1" in str(raised.value)


@pytest.mark.anyio
async def test_an_option_s3fs_does_not_know_is_a_config_error(s3_bucket: S3Bucket) -> None:
    storage = _plugins().open_storage(s3_bucket.url, no_such_option="1", **s3_bucket.storage_options)
    with pytest.raises(ConfigError, match="no_such_option"):
        await storage.exists("x")


@pytest.mark.anyio
async def test_a_kernel_refusing_writeback_advice_does_not_fail_a_local_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """posix_fadvise is only advice (some filesystems and sandboxes refuse it): the write goes on.
    The refusal is simulated (it cannot be produced on this machine's filesystems)."""
    calls = []

    def refuse(fd: int, offset: int, length: int, advice: int) -> None:
        calls.append(advice)
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(fsspec_store.os, "posix_fadvise", refuse)
    data = _data(fsspec_store.WRITEBACK_BYTES * 2 + 12345)
    storage = _plugins().open_storage(str(tmp_path))
    await Pipeline(iterable_source([data]), [], storage.open_write("a/b")).run()
    assert (tmp_path / "a" / "b").read_bytes() == data
    assert len(calls) == 1  # refused once, not asked again for this object
