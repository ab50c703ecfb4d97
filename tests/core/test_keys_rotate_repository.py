"""``backstream keys rotate --repo``: re-wrap every encrypted object of a repository's backups.

A SQLite backup encrypted to one local keystore is rotated to another; the body bytes must stay
identical, the old key must stop working, and a failed rotation must change nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from backstream.crypto import AuditLog, Header, read_header
from backstream.jobs import KeyOptions, backup
from backstream.repository import Manifest, Repository
from fixtures.sqlite_db import make_awkward_db, table_checksums

FAST_KDF = ["--kdf-param", "t=1", "--kdf-param", "m=1024", "--kdf-param", "p=1"]
"""Cheap Argon2id costs so that the keystores open fast (real keystores use the defaults)."""


def make_env(directory: Path) -> dict[str, str]:
    """The environment for the CLI: no inherited repository or passphrase, a private audit log."""
    names = ("BACKSTREAM_REPO", "BACKSTREAM_PASSPHRASE", "BACKSTREAM_KEYSTORE_PASSPHRASE", "BACKSTREAM_NEW_PASSPHRASE")
    environment = {k: v for k, v in os.environ.items() if k not in names}
    environment["BACKSTREAM_AUDIT_LOG"] = str(directory / "audit.log")
    return environment


def cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "backstream.cli.main", *args], capture_output=True, text=True, env=env, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"backstream {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


@dataclass
class Keystore:
    ref: str
    passphrase_file: str


def make_keystore(directory: Path, name: str, env: dict[str, str]) -> Keystore:
    secret = directory / f"{name}.pass"
    secret.write_text(f"passphrase of {name}\n")
    path = directory / f"{name}.json"
    created = cli("keys", "create", f"local:{path}", "--passphrase-file", str(secret), *FAST_KDF, env=env)
    return Keystore(created.stdout.strip(), str(secret))


@dataclass
class Setup:
    directory: Path
    env: dict[str, str]
    repo: str
    db: Path
    old_key: Keystore
    new_key: Keystore
    manifest: Manifest
    old_objects: dict[str, bytes]


def make_setup(directory: Path) -> Setup:
    """A repository holding one SQLite backup encrypted to keystore ``old``; keystore ``new`` exists."""
    env = make_env(directory)
    repo = str(directory / "repo")
    cli("init", "--repo", repo, env=env)
    db = make_awkward_db(directory / "source.db", blob_mib=1)
    old_key = make_keystore(directory, "old", env)
    new_key = make_keystore(directory, "new", env)
    keys = KeyOptions(
        provider_options={"passphrase_file": old_key.passphrase_file},
        audit=AuditLog(directory / "audit.log"),
    )
    manifest = anyio.run(
        lambda: backup(f"sqlite://{db}", repo=repo, encrypt=[old_key.ref], keys=keys), backend="asyncio"
    )
    old_objects = {record.path: (Path(repo) / record.path).read_bytes() for record in manifest.objects}
    return Setup(directory, env, repo, db, old_key, new_key, manifest, old_objects)


def rotate(setup: Setup, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cli(
        "keys",
        "rotate",
        "--repo",
        setup.repo,
        "--to",
        setup.new_key.ref,
        "--new-passphrase-file",
        setup.new_key.passphrase_file,
        *extra,
        env=setup.env,
        check=check,
    )


def read_manifest(setup: Setup) -> Manifest:
    path = Path(setup.repo) / Repository.manifest_path(setup.manifest.backup_id)
    return Manifest.from_json(path.read_bytes(), where=str(path))


def header_of(blob: bytes) -> Header:
    async def main() -> Header:
        header, _ = await read_header(_chunks(blob))
        return header

    return anyio.run(main)


def body_sha256(blob: bytes) -> str:
    """sha256 of the encrypted chunks: the bytes after the header."""
    return hashlib.sha256(blob[len(header_of(blob).raw) :]).hexdigest()


async def _chunks(blob: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(blob), 65536):
        yield blob[start : start + 65536]


def restore_to(setup: Setup, key: Keystore, target: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cli(
        "restore",
        setup.manifest.backup_id,
        "--repo",
        setup.repo,
        "--to",
        f"sqlite://{target}",
        "--passphrase-file",
        key.passphrase_file,
        env=setup.env,
        check=check,
    )


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """The setup after a successful ``keys rotate --repo URL latest --to NEW``."""
    setup = make_setup(tmp_path_factory.mktemp("rotated"))
    rotate(setup, "latest", "--passphrase-file", setup.old_key.passphrase_file)
    return setup


def test_restore_works_with_the_new_key_after_rotation(rotated: Setup) -> None:
    target = rotated.directory / "restored-new.db"
    restore_to(rotated, rotated.new_key, target)
    assert table_checksums(target) == table_checksums(rotated.db)


def test_restore_fails_with_the_old_key_after_rotation(rotated: Setup) -> None:
    target = rotated.directory / "restored-old.db"
    result = restore_to(rotated, rotated.old_key, target, check=False)
    assert result.returncode != 0
    assert "no stanza could be unwrapped" in result.stderr
    assert not target.exists() or target.stat().st_size == 0


def test_rotation_removes_the_old_keys_stanza_from_the_headers(rotated: Setup) -> None:
    for record in read_manifest(rotated).objects:
        blob = (Path(rotated.repo) / record.path).read_bytes()
        refs = [stanza.key_ref for stanza in header_of(blob).stanzas]
        assert refs == [rotated.new_key.ref]


def test_check_read_data_passes_after_rotation(rotated: Setup) -> None:
    key = rotated.new_key.passphrase_file
    cli("check", "--repo", rotated.repo, "--read-data", "--passphrase-file", key, env=rotated.env)


def test_rotation_keeps_the_encrypted_body_bytes_identical(rotated: Setup) -> None:
    new = read_manifest(rotated)
    old_paths = [record.path for record in rotated.manifest.objects]
    assert [record.path for record in new.objects] != old_paths
    for old_record, new_record in zip(rotated.manifest.objects, new.objects, strict=True):
        new_blob = (Path(rotated.repo) / new_record.path).read_bytes()
        assert body_sha256(new_blob) == body_sha256(rotated.old_objects[old_record.path])
        assert new_record.stored_sha256 == hashlib.sha256(new_blob).hexdigest()
        assert new_record.stored_size == len(new_blob)


def test_rotation_replaces_the_key_refs_in_the_manifest(rotated: Setup) -> None:
    new = read_manifest(rotated)
    assert all(record.key_refs == (rotated.old_key.ref,) for record in rotated.manifest.objects)
    assert all(record.key_refs == (rotated.new_key.ref,) for record in new.objects)


def test_rotation_deletes_the_old_objects(rotated: Setup) -> None:
    assert not any((Path(rotated.repo) / path).exists() for path in rotated.old_objects)


def test_rotation_writes_an_audit_line_per_object(rotated: Setup) -> None:
    lines = [json.loads(line) for line in (rotated.directory / "audit.log").read_text().splitlines()]
    rotations = [line for line in lines if line.get("op") == "rotate"]
    assert len(rotations) == len(rotated.manifest.objects)


def test_failed_rotation_leaves_the_repository_restorable_with_the_old_key(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    before = cli("list", "--repo", setup.repo, "--json", env=setup.env).stdout
    result = rotate(setup, "--all", "--passphrase-file", setup.new_key.passphrase_file, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert cli("list", "--repo", setup.repo, "--json", env=setup.env).stdout == before
    assert read_manifest(setup) == setup.manifest
    for path, blob in setup.old_objects.items():
        assert (Path(setup.repo) / path).read_bytes() == blob
    target = tmp_path / "restored.db"
    restore_to(setup, setup.old_key, target)
    assert table_checksums(target) == table_checksums(setup.db)


def test_file_mode_options_are_refused_with_repo(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    result = cli("keys", "rotate", "--repo", str(tmp_path), "--to", "passphrase", "-i", "x", env=env, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


def test_rotation_failing_after_the_copy_leaves_the_old_manifest_and_no_new_object(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    record = setup.manifest.objects[0]
    stored = Path(setup.repo) / record.path
    damaged = bytearray(setup.old_objects[record.path])
    damaged[-1] ^= 1  # the header opens; the whole-object sha256 no longer matches the manifest
    stored.write_bytes(bytes(damaged))
    result = rotate(setup, "latest", "--passphrase-file", setup.old_key.passphrase_file, check=False)
    assert result.returncode != 0
    assert "does not match its manifest" in result.stderr
    assert read_manifest(setup) == setup.manifest
    assert sorted(p.name for p in stored.parent.iterdir()) == [stored.name]


def test_rotated_object_names_keep_their_standard_extension_last() -> None:
    from backstream.jobs.rotate import _new_path

    first = _new_path("B1", "backups/B1/data/database.sqlite.zst")
    assert first.startswith("backups/B1/data/database.sqlite.rot-") and first.endswith(".zst")
    again = _new_path("B1", first)
    assert again.count(".rot-") == 1 and again.endswith(".zst") and again != first
