"""Backup and restore jobs (the Python API) with the sqlite source, on local, memory:// and S3 repositories.

Round trips compare per-table checksums computed with sqlite3 alone; the fault cases check that no
manifest is written and that the restore target is left exactly as it was.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from backstream import (
    ConfigError,
    IntegrityError,
    JobFailed,
    JobFinished,
    JobStarted,
    KeyProviderError,
    Plugins,
    RepositoryError,
    SourceError,
    StorageError,
    UnknownPluginError,
    hookimpl,
)
from backstream.jobs import KeyOptions, backup, restore
from backstream.repository import Manifest, Repository
from fixtures.s3 import S3Bucket
from fixtures.sqlite_db import file_sha256, leftovers, make_awkward_db, table_checksums
from moto.server import ThreadedMotoServer

FAST_KDF = {"kdf.t": "1", "kdf.m": "1024", "kdf.p": "1"}
"""Cheap Argon2id costs so that passphrase tests stay fast (real backups use the defaults)."""


class Events:
    """A lifecycle-hook plugin that records what it hears."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    @hookimpl
    def backstream_job_started(self, event: JobStarted) -> None:
        self.seen.append(("started", event.kind, event.job_id))

    @hookimpl
    def backstream_job_finished(self, event: JobFinished) -> None:
        self.seen.append(("finished", event.kind, event.job_id))

    @hookimpl
    def backstream_job_failed(self, event: JobFailed) -> None:
        self.seen.append(("failed", event.kind, event.error))


@pytest.fixture(autouse=True)
def _keys_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BACKSTREAM_AUDIT_LOG", str(tmp_path / "audit.log"))
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "correct horse battery staple")


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return Plugins.load()


@pytest.fixture
def repo(plugins: Plugins, tmp_path: Path) -> str:
    url = str(tmp_path / "repo")
    anyio.run(Repository.init, plugins.open_storage(url))
    return url


def sqlite_url(path: Path) -> str:
    return f"sqlite://{path.absolute()}"


def do_backup(plugins: Plugins, source: Path, repo: str, **kwargs: Any) -> Manifest:
    return anyio.run(lambda: backup(sqlite_url(source), repo=repo, plugins=plugins, **kwargs))


def do_restore(plugins: Plugins, backup_id: str, repo: str, target: Path, **kwargs: Any) -> Manifest:
    return anyio.run(lambda: restore(backup_id, repo=repo, to=sqlite_url(target), plugins=plugins, **kwargs))


def listed(plugins: Plugins, repo: str, **storage_options: Any) -> list[str]:
    async def main() -> list[str]:
        repository = await Repository.open(plugins.open_storage(repo, **storage_options))
        return [m.backup_id for m in await repository.manifests()]

    return anyio.run(main)


def stored_file(repo: str, manifest: Manifest) -> Path:
    return Path(repo) / manifest.objects[0].path


# --- round trips -------------------------------------------------------------------------------


def test_backup_then_restore_gives_identical_content(
    plugins: Plugins, awkward_db: Path, repo: str, tmp_path: Path
) -> None:
    manifest = do_backup(plugins, awkward_db, repo)
    target = tmp_path / "restored" / "copy.db"
    do_restore(plugins, manifest.backup_id, repo, target)
    assert table_checksums(target) == table_checksums(awkward_db)


def test_round_trip_through_a_memory_repository(plugins: Plugins, awkward_db: Path, tmp_path: Path) -> None:
    url = f"memory://jobs-{uuid.uuid4().hex}/repo"
    anyio.run(Repository.init, plugins.open_storage(url))
    manifest = do_backup(plugins, awkward_db, url)
    target = tmp_path / "from-memory.db"
    do_restore(plugins, "latest", url, target)
    assert manifest.backup_id in listed(plugins, url)
    assert table_checksums(target) == table_checksums(awkward_db)


def test_round_trip_through_an_s3_repository(
    plugins: Plugins, awkward_db: Path, tmp_path: Path, s3_bucket: S3Bucket
) -> None:
    options = s3_bucket.storage_options
    anyio.run(lambda: Repository.init(plugins.open_storage(s3_bucket.url, **options)))
    manifest = do_backup(plugins, awkward_db, s3_bucket.url, storage_options=options)
    target = tmp_path / "from-s3.db"
    do_restore(plugins, manifest.backup_id, s3_bucket.url, target, storage_options=options)
    assert table_checksums(target) == table_checksums(awkward_db)
    assert f"{s3_bucket.prefix}/backups/{manifest.backup_id}/manifest.json" in s3_bucket.keys()


@pytest.mark.parametrize("cipher", ["chacha20-poly1305", "aes-256-gcm"])
def test_encrypted_round_trip(plugins: Plugins, awkward_db: Path, repo: str, tmp_path: Path, cipher: str) -> None:
    keys = KeyOptions(cipher=cipher, provider_options=FAST_KDF)
    manifest = do_backup(plugins, awkward_db, repo, encrypt=["passphrase"], keys=keys)
    record = manifest.objects[0]
    assert record.cipher == cipher
    assert record.key_refs == ("passphrase",)
    assert b"SQLite format 3" not in stored_file(repo, manifest).read_bytes()[:4096]
    target = tmp_path / "decrypted.db"
    do_restore(plugins, manifest.backup_id, repo, target, keys=keys)
    assert table_checksums(target) == table_checksums(awkward_db)


def test_a_job_that_fails_early_leaves_no_prepared_key_for_the_next_job(
    plugins: Plugins, awkward_db: Path, repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = KeyOptions(provider_options={})  # no options: the providers as registered, as the CLI has them
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "old passphrase")
    with pytest.raises(RepositoryError):  # fails after its key was prepared, before any wrap
        do_backup(plugins, awkward_db, str(tmp_path / "not-a-repository"), encrypt=["passphrase"], keys=keys)
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "new passphrase")
    manifest = do_backup(plugins, awkward_db, repo, encrypt=["passphrase"], keys=keys)
    target = tmp_path / "decrypted.db"
    do_restore(plugins, manifest.backup_id, repo, target, keys=keys)  # with the new passphrase
    assert table_checksums(target) == table_checksums(awkward_db)


def test_a_keystore_passphrase_does_not_carry_over_to_the_next_job(
    plugins: Plugins, awkward_db: Path, repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fixtures.crypto_objects import create_keystore_key

    first = create_keystore_key(tmp_path / "one.json", "passphrase one")
    second = create_keystore_key(tmp_path / "two.json", "passphrase two")
    keys = KeyOptions(provider_options={})  # no options: as the CLI without --keystore/--passphrase-file
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "passphrase one")
    do_backup(plugins, awkward_db, repo, encrypt=[first], keys=keys)
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "passphrase two")  # the next job, in the same process
    do_backup(plugins, awkward_db, repo, encrypt=[second], keys=KeyOptions(provider_options={}))


@pytest.mark.parametrize("codec", ["zstd:3", "gzip:6", "bz2", "xz", "lz4", "none"])
def test_every_compressor_round_trips(plugins: Plugins, tmp_path: Path, repo: str, codec: str) -> None:
    source = make_awkward_db(tmp_path / "small.db", blob_mib=1)
    manifest = do_backup(plugins, source, repo, compress=codec)
    assert manifest.objects[0].codec == codec.split(":")[0]
    target = tmp_path / f"copy-{codec}.db"
    do_restore(plugins, manifest.backup_id, repo, target)
    assert table_checksums(target) == table_checksums(source)


def test_the_stored_object_is_a_standard_zstd_file_of_the_database(
    plugins: Plugins, awkward_db: Path, repo: str, tmp_path: Path
) -> None:
    manifest = do_backup(plugins, awkward_db, repo, compress="zstd:3")
    stored = stored_file(repo, manifest)
    assert stored.name == "database.sqlite.zst"
    out = tmp_path / "by-zstd-tool.db"
    subprocess.run(["zstd", "-q", "-d", str(stored), "-o", str(out)], check=True)
    assert table_checksums(out) == table_checksums(awkward_db)


def test_uncompressed_backup_stores_the_database_file_itself(plugins: Plugins, awkward_db: Path, repo: str) -> None:
    manifest = do_backup(plugins, awkward_db, repo, compress="none")
    assert stored_file(repo, manifest).read_bytes().startswith(b"SQLite format 3\x00")


# --- the manifest ------------------------------------------------------------------------------


def test_manifest_describes_the_stored_object_exactly(plugins: Plugins, awkward_db: Path, repo: str) -> None:
    manifest = do_backup(plugins, awkward_db, repo, compress="zstd:5")
    record = manifest.objects[0]
    stored = stored_file(repo, manifest)
    assert record.stored_size == stored.stat().st_size
    assert record.stored_sha256 == file_sha256(stored)
    assert record.plaintext_size == manifest.source.metadata["size"]
    assert (record.codec, record.codec_options, record.cipher) == ("zstd", {"level": "5"}, None)
    assert manifest.source.kind == "sqlite"
    assert manifest.source.database == str(awkward_db)
    assert manifest.source.server_version
    assert manifest.source.metadata["page_count"] > 0
    assert manifest.tool_version
    assert manifest.started_at <= manifest.finished_at


def test_manifest_on_storage_matches_what_backup_returned(plugins: Plugins, awkward_db: Path, repo: str) -> None:
    manifest = do_backup(plugins, awkward_db, repo)
    on_disk = Path(repo) / "backups" / manifest.backup_id / "manifest.json"
    assert Manifest.from_json(on_disk.read_bytes(), where="test") == manifest
    assert json.loads(on_disk.read_text())["status"] == "ok"


def test_manifest_is_the_last_object_written(plugins: Plugins, awkward_db: Path, repo: str) -> None:
    manifest = do_backup(plugins, awkward_db, repo)
    backup_dir = Path(repo) / "backups" / manifest.backup_id
    files = sorted(backup_dir.rglob("*"), key=lambda p: p.stat().st_mtime_ns)
    assert [p for p in files if p.is_file()][-1].name == "manifest.json"


def test_passwords_in_the_source_url_never_reach_the_manifest(plugins: Plugins, tmp_path: Path, repo: str) -> None:
    from backstream.jobs.backup import _source_info
    from backstream.jobs.common import manifest_safe
    from backstream.protocols import JobContext

    job = JobContext(job_id="x", metadata={"dsn": "postgresql://bob:s3cret@db/app", "server_version": "15"})
    info = _source_info("postgresql", "postgresql://bob@db/app", job, manifest_safe(job.metadata))
    assert "s3cret" not in json.dumps(info.to_dict())


# --- faults during backup ------------------------------------------------------------------------


def test_a_failing_source_commits_nothing(plugins: Plugins, tmp_path: Path, repo: str) -> None:
    good = do_backup(plugins, make_awkward_db(tmp_path / "ok.db", blob_mib=1), repo)
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"not a database" * 1000)
    with pytest.raises(SourceError):
        do_backup(plugins, bogus, repo)
    assert listed(plugins, repo) == [good.backup_id]
    stray = [p for p in (Path(repo) / "backups").rglob("*") if p.is_file() and good.backup_id not in p.parts]
    assert stray == []
    assert list((Path(repo) / "locks").iterdir()) == []


def test_a_failed_attempt_counts_in_the_statistics(plugins: Plugins, tmp_path: Path, repo: str) -> None:
    do_backup(plugins, make_awkward_db(tmp_path / "ok.db", blob_mib=1), repo)
    with pytest.raises(SourceError):
        do_backup(plugins, tmp_path / "missing.db", repo)

    async def main() -> Any:
        return await (await Repository.open(plugins.open_storage(repo))).stats()

    stats = anyio.run(main)
    assert (stats.backups, stats.failed, stats.success_rate) == (1, 1, 0.5)


def test_storage_failing_mid_upload_commits_nothing(plugins: Plugins, awkward_db: Path, s3_bucket: S3Bucket) -> None:
    """A second moto server shares the first one's state; it is stopped while the object uploads."""
    anyio.run(lambda: Repository.init(plugins.open_storage(s3_bucket.url, **s3_bucket.storage_options)))
    dying = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    dying.start()
    host, port = dying.get_host_and_port()
    seen = [0]

    def progress(size: int) -> None:
        seen[0] += size
        if seen[0] >= 2 * 2**20 and seen[0] - size < 2 * 2**20:
            dying.stop()

    try:
        with pytest.raises(StorageError):
            do_backup(
                plugins,
                awkward_db,
                s3_bucket.url,
                compress="none",
                progress=progress,
                storage_options={"endpoint_url": f"http://{host}:{port}", "part_size": str(5 * 2**20)},
            )
    finally:
        if seen[0] < 2 * 2**20:
            dying.stop()
    assert seen[0] >= 2 * 2**20
    assert listed(plugins, s3_bucket.url, **s3_bucket.storage_options) == []
    assert not [key for key in s3_bucket.keys() if key.endswith("manifest.json")]


def test_unknown_source_scheme_names_the_known_ones(plugins: Plugins, repo: str) -> None:
    with pytest.raises(UnknownPluginError, match=r"no source plugin handles oracle:// URLs.*sqlite"):
        anyio.run(lambda: backup("oracle://db/x", repo=repo, plugins=plugins))


def test_backup_to_an_uninitialised_repository_hints_at_init(
    plugins: Plugins, awkward_db: Path, tmp_path: Path
) -> None:
    with pytest.raises(RepositoryError, match="backstream init --repo"):
        do_backup(plugins, awkward_db, str(tmp_path / "never-initialised"))


def test_bad_compression_options_fail_before_anything_is_written(plugins: Plugins, awkward_db: Path, repo: str) -> None:
    with pytest.raises(ConfigError):
        do_backup(plugins, awkward_db, repo, compress="zstd:99")
    assert not (Path(repo) / "backups").exists() or listed(plugins, repo) == []


def test_lifecycle_hooks_hear_a_backup_and_a_restore(awkward_db: Path, repo: str, tmp_path: Path) -> None:
    events = Events()
    plugins = Plugins.load(extra_plugins=[events])
    manifest = do_backup(plugins, awkward_db, repo)
    do_restore(plugins, manifest.backup_id, repo, tmp_path / "hooked.db")
    assert [(what, kind) for what, kind, _ in events.seen] == [
        ("started", "backup"),
        ("finished", "backup"),
        ("started", "restore"),
        ("finished", "restore"),
    ]
    assert events.seen[0][2] == manifest.backup_id


def test_lifecycle_hooks_hear_a_failure(tmp_path: Path, repo: str) -> None:
    events = Events()
    plugins = Plugins.load(extra_plugins=[events])
    with pytest.raises(SourceError):
        do_backup(plugins, tmp_path / "missing.db", repo)
    assert [(what, kind) for what, kind, _ in events.seen] == [("started", "backup"), ("failed", "backup")]
    assert "does not exist" in events.seen[1][2]


def test_concurrent_backups_into_one_repository_both_commit(plugins: Plugins, tmp_path: Path, repo: str) -> None:
    first = make_awkward_db(tmp_path / "one.db", blob_mib=1)
    second = make_awkward_db(tmp_path / "two.db", blob_mib=1, seed=2)
    results: list[Manifest] = []

    async def main() -> None:
        async def one(path: Path) -> None:
            results.append(await backup(sqlite_url(path), repo=repo, plugins=plugins))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, first)
            tg.start_soon(one, second)

    anyio.run(main)
    assert sorted(listed(plugins, repo)) == sorted(m.backup_id for m in results)


def test_delete_is_refused_while_a_backup_holds_the_lock(plugins: Plugins, awkward_db: Path, repo: str) -> None:
    async def main() -> None:
        repository = await Repository.open(plugins.open_storage(repo))
        committed = await backup(sqlite_url(awkward_db), repo=repository, plugins=plugins)
        async with repository.lock("backup", exclusive=False):
            with pytest.raises(RepositoryError, match="locked"):
                await repository.delete(committed.backup_id)

    anyio.run(main)


# --- restore -----------------------------------------------------------------------------------


def tamper(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
    elif how == "truncate":
        del data[-100:]
    elif how == "append":
        data += b"extra"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["flip", "truncate", "append"])
def test_restore_of_a_tampered_object_leaves_an_existing_target_byte_identical(
    plugins: Plugins, awkward_db: Path, repo: str, tmp_path: Path, how: str
) -> None:
    manifest = do_backup(plugins, awkward_db, repo)
    tamper(stored_file(repo, manifest), how)
    target = make_awkward_db(tmp_path / "existing.db", blob_mib=1, seed=42)
    before = file_sha256(target)
    with pytest.raises(IntegrityError):
        do_restore(plugins, manifest.backup_id, repo, target, force=True)
    assert file_sha256(target) == before
    assert leftovers(tmp_path) == []


def test_restore_of_a_tampered_uncompressed_object_fails_at_the_end_of_the_stream(
    plugins: Plugins, awkward_db: Path, repo: str, tmp_path: Path
) -> None:
    """With no codec to notice, only the sha256 check at the end can: the target must stay missing."""
    manifest = do_backup(plugins, awkward_db, repo, compress="none")
    tamper(stored_file(repo, manifest), "flip")
    target = tmp_path / "fresh" / "missing.db"
    with pytest.raises(IntegrityError, match="sha256"):
        do_restore(plugins, manifest.backup_id, repo, target)
    assert not target.exists()
    assert leftovers(target.parent) == []


def test_restore_of_a_tampered_encrypted_object_leaves_the_target_missing(
    plugins: Plugins, awkward_db: Path, repo: str, tmp_path: Path
) -> None:
    keys = KeyOptions(provider_options=FAST_KDF)
    manifest = do_backup(plugins, awkward_db, repo, encrypt=["passphrase"], keys=keys)
    tamper(stored_file(repo, manifest), "flip")
    target = tmp_path / "never.db"
    with pytest.raises(IntegrityError):
        do_restore(plugins, manifest.backup_id, repo, target, keys=keys)
    assert not target.exists()


def test_restore_with_the_wrong_passphrase_fails_and_leaves_the_target_alone(
    plugins: Plugins, awkward_db: Path, repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = KeyOptions(provider_options=FAST_KDF)
    manifest = do_backup(plugins, awkward_db, repo, encrypt=["passphrase"], keys=keys)
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "wrong")
    target = tmp_path / "never.db"
    with pytest.raises(KeyProviderError):
        do_restore(plugins, manifest.backup_id, repo, target, keys=keys)
    assert not target.exists()


def test_restore_refuses_a_non_empty_target_without_force(
    plugins: Plugins, awkward_db: Path, repo: str, tmp_path: Path
) -> None:
    manifest = do_backup(plugins, awkward_db, repo)
    target = tmp_path / "taken.db"
    target.write_bytes(b"keep me")
    with pytest.raises(SourceError, match="not empty"):
        do_restore(plugins, manifest.backup_id, repo, target)
    assert target.read_bytes() == b"keep me"
    do_restore(plugins, manifest.backup_id, repo, target, force=True)
    assert table_checksums(target) == table_checksums(awkward_db)


def test_latest_restores_the_newest_backup(plugins: Plugins, tmp_path: Path, repo: str) -> None:
    source = make_awkward_db(tmp_path / "changing.db", blob_mib=1)
    do_backup(plugins, source, repo)
    import sqlite3

    with sqlite3.connect(source) as connection:
        connection.execute("INSERT INTO nulls VALUES ('newer', 1, 2)")
    connection.close()
    newest = do_backup(plugins, source, repo)
    target = tmp_path / "latest.db"
    restored = do_restore(plugins, "latest", repo, target)
    assert restored.backup_id == newest.backup_id
    assert table_checksums(target) == table_checksums(source)


def test_restore_into_another_kind_of_target_is_refused(plugins: Plugins, awkward_db: Path, repo: str) -> None:
    manifest = do_backup(plugins, awkward_db, repo)
    with pytest.raises((ConfigError, RepositoryError)):
        anyio.run(lambda: restore(manifest.backup_id, repo=repo, to="postgresql://u@127.0.0.1:1/x", plugins=plugins))


def test_restore_of_an_unknown_backup_is_a_repository_error(plugins: Plugins, repo: str, tmp_path: Path) -> None:
    with pytest.raises(RepositoryError, match="no backup"):
        do_restore(plugins, "20200101T000000Z-abcdef", repo, tmp_path / "x.db")


def test_restore_reports_progress_in_stored_bytes(
    plugins: Plugins, awkward_db: Path, repo: str, tmp_path: Path
) -> None:
    manifest = do_backup(plugins, awkward_db, repo)
    seen: list[int] = []
    do_restore(plugins, manifest.backup_id, repo, tmp_path / "p.db", progress=seen.append)
    assert sum(seen) == manifest.stored_size


def test_backup_reports_progress_in_source_bytes(plugins: Plugins, awkward_db: Path, repo: str) -> None:
    seen: list[int] = []
    manifest = do_backup(plugins, awkward_db, repo, progress=seen.append)
    assert sum(seen) == manifest.plaintext_size


def test_a_key_that_cannot_be_wrapped_fails_the_backup_cleanly(
    plugins: Plugins, awkward_db: Path, repo: str, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-keystore.json"
    with pytest.raises(ConfigError) as caught:
        do_backup(plugins, awkward_db, repo, encrypt=[f"local:{missing}"])
    assert str(missing) in str(caught.value)
    assert listed(plugins, repo) == []
    assert [p for p in (Path(repo) / "backups").rglob("*") if p.is_file()] == []
    assert list((Path(repo) / "locks").iterdir()) == []
