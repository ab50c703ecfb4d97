"""Backups of sources that dump several files (``dump_files``/``restore_files``, as PostgreSQL's directory
format does): one pipeline and one manifest object per file, each verified on restore.

A small test plugin serves ``dir://`` URLs: it dumps the files of a directory and restores them into a
new directory that appears only when every file arrived intact.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from backstream import (
    ByteSource,
    ConfigError,
    IntegrityError,
    JobContext,
    Plugins,
    Register,
    SourceError,
    file_sink,
    file_source,
    hookimpl,
)
from backstream.jobs import KeyOptions, backup, restore
from backstream.repository import Manifest, Repository

FAST_KDF = {"kdf.t": "1", "kdf.m": "1024", "kdf.p": "1"}


class DirSource:
    """Every file of one local directory, dumped as separate files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.committed = False

    def dump(self, job: JobContext) -> ByteSource:
        raise ConfigError("a directory dumps several files: use dump_files()")

    @asynccontextmanager
    async def dump_files(self, job: JobContext) -> AsyncIterator[AsyncIterator[tuple[str, ByteSource]]]:
        job.metadata["files"] = len(os.listdir(self.path))

        async def files() -> AsyncIterator[tuple[str, ByteSource]]:
            for name in sorted(os.listdir(self.path)):
                yield name, file_source(self.path / name)

        yield files()

    async def restore(self, data: AsyncIterator[bytes], job: JobContext) -> None:
        raise ConfigError("a directory restores several files: use restore_files()")

    async def restore_files(self, files: AsyncIterable[tuple[str, ByteSource]], job: JobContext) -> None:
        if self.path.exists():
            raise SourceError(f"{self.path} exists")
        scratch = self.path.with_name(self.path.name + ".partial")
        scratch.mkdir(parents=True)
        try:
            async for name, source in files:
                async with source as chunks, file_sink(scratch / name, fsync=False) as writer:
                    async for chunk in chunks:
                        await writer.write(chunk)
            scratch.rename(self.path)
            self.committed = True
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


class DirFactory:
    name = "dirs"
    schemes = frozenset({"dir"})

    def __init__(self) -> None:
        self.opened: list[DirSource] = []

    def open(self, url: str, options: Mapping[str, str]) -> DirSource:
        source = DirSource(Path(url.removeprefix("dir://")))
        self.opened.append(source)
        return source


class DirPlugin:
    def __init__(self) -> None:
        self.factory = DirFactory()

    @hookimpl
    def backstream_register_sources(self, register: Register[Any]) -> None:
        register.add("dirs", self.factory)


@pytest.fixture(autouse=True)
def _keys_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BACKSTREAM_AUDIT_LOG", str(tmp_path / "audit.log"))
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "multi-file test")


@pytest.fixture
def plugin() -> DirPlugin:
    return DirPlugin()


@pytest.fixture
def plugins(plugin: DirPlugin) -> Plugins:
    return Plugins.load(extra_plugins=[plugin])


@pytest.fixture
def repo(plugins: Plugins, tmp_path: Path) -> str:
    url = str(tmp_path / "repo")
    anyio.run(Repository.init, plugins.open_storage(url))
    return url


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    for index in range(7):
        (root / f"file-{index}.dat").write_bytes(os.urandom(index * 50_000) + b"x" * 100_000)
    (root / "empty.dat").write_bytes(b"")
    return root


def contents(root: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(root.iterdir())}


def do_backup(plugins: Plugins, tree: Path, repo: str, **kwargs: Any) -> Manifest:
    return anyio.run(lambda: backup(f"dir://{tree}", repo=repo, plugins=plugins, **kwargs))


def do_restore(plugins: Plugins, manifest: Manifest, repo: str, target: Path, **kwargs: Any) -> Manifest:
    return anyio.run(lambda: restore(manifest.backup_id, repo=repo, to=f"dir://{target}", plugins=plugins, **kwargs))


def test_each_file_becomes_one_object_with_its_own_checksums(plugins: Plugins, tree: Path, repo: str) -> None:
    manifest = do_backup(plugins, tree, repo)
    assert [obj.name for obj in manifest.objects] == sorted(p.name for p in tree.iterdir())
    for obj in manifest.objects:
        assert obj.path == f"backups/{manifest.backup_id}/data/{obj.name}.zst"
        assert obj.plaintext_size == (tree / obj.name).stat().st_size
        assert obj.stored_size == (Path(repo) / obj.path).stat().st_size
    assert manifest.source.metadata["files"] == 8


@pytest.mark.parametrize("jobs", ["1", "3"])
def test_multi_file_backup_restores_every_file(
    plugins: Plugins, tree: Path, repo: str, tmp_path: Path, jobs: str
) -> None:
    manifest = do_backup(plugins, tree, repo, options={"jobs": jobs})
    target = tmp_path / "restored"
    do_restore(plugins, manifest, repo, target)
    assert contents(target) == contents(tree)


def test_encrypted_multi_file_backup_uses_one_data_key_per_file(
    plugins: Plugins, tree: Path, repo: str, tmp_path: Path
) -> None:
    keys = KeyOptions(provider_options=FAST_KDF)
    manifest = do_backup(plugins, tree, repo, encrypt=["passphrase"], keys=keys, options={"jobs": "3"})
    assert all(obj.cipher == "chacha20-poly1305" for obj in manifest.objects)
    headers = {(Path(repo) / obj.path).read_bytes()[:64] for obj in manifest.objects}
    assert len(headers) == len(manifest.objects)  # fresh salt and key stanza per object
    target = tmp_path / "decrypted"
    do_restore(plugins, manifest, repo, target, keys=keys)
    assert contents(target) == contents(tree)


def test_an_encrypted_object_moved_to_another_name_is_refused(
    plugins: Plugins, tree: Path, repo: str, tmp_path: Path
) -> None:
    keys = KeyOptions(provider_options=FAST_KDF)
    manifest = do_backup(plugins, tree, repo, encrypt=["passphrase"], keys=keys)
    first, second = manifest.objects[1], manifest.objects[2]
    # Swap two objects and their manifest entries' hashes: only the header context can tell.
    a, b = Path(repo) / first.path, Path(repo) / second.path
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    manifest_path = Path(repo) / "backups" / manifest.backup_id / "manifest.json"
    text = manifest_path.read_text()
    text = text.replace(first.stored_sha256, "A" * 64).replace(second.stored_sha256, first.stored_sha256)
    text = text.replace("A" * 64, second.stored_sha256)
    text = text.replace(f'"stored_size": {first.stored_size},', '"stored_size": -1,')
    text = text.replace(f'"stored_size": {second.stored_size},', f'"stored_size": {first.stored_size},')
    text = text.replace('"stored_size": -1,', f'"stored_size": {second.stored_size},')
    manifest_path.write_text(text)
    target = tmp_path / "never"
    with pytest.raises(IntegrityError, match="context"):
        do_restore(plugins, manifest, repo, target, keys=keys)
    assert not target.exists()


def test_a_tampered_file_fails_the_restore_before_the_target_appears(
    plugins: Plugins, plugin: DirPlugin, tree: Path, repo: str, tmp_path: Path
) -> None:
    manifest = do_backup(plugins, tree, repo, compress="none")
    last = Path(repo) / manifest.objects[-1].path
    data = bytearray(last.read_bytes())
    data[-1] ^= 0xFF
    last.write_bytes(bytes(data))
    target = tmp_path / "never"
    with pytest.raises(IntegrityError, match="sha256"):
        do_restore(plugins, manifest, repo, target)
    assert not target.exists()
    assert not plugin.factory.opened[-1].committed


def test_a_plugin_that_restores_one_stream_refuses_a_multi_file_backup(
    plugins: Plugins, tree: Path, repo: str, tmp_path: Path
) -> None:
    manifest = do_backup(plugins, tree, repo)
    manifest_path = Path(repo) / "backups" / manifest.backup_id / "manifest.json"
    manifest_path.write_text(manifest_path.read_text().replace('"kind": "dirs"', '"kind": "sqlite"'))
    with pytest.raises(ConfigError, match="restores one stream"):
        anyio.run(lambda: restore(manifest.backup_id, repo=repo, to=f"sqlite://{tmp_path}/x.db", plugins=plugins))
