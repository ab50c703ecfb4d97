"""The ``sqlite`` source plugin on its own: online-backup dumps, atomic restores, one-line errors.

The plugin is reached through the registry by name, as the jobs reach it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from backstream import (
    ConfigError,
    IntegrityError,
    JobContext,
    Plugins,
    SourceError,
    SourceFactory,
    VerificationError,
    split,
)
from fixtures.sqlite_db import file_sha256, leftovers, make_awkward_db, table_checksums


@pytest.fixture(scope="module")
def sqlite() -> SourceFactory:
    factory: SourceFactory = Plugins.load().sources().get("sqlite")
    return factory


def url(path: Path | str) -> str:
    return f"sqlite://{Path(path).absolute()}"


async def _dump(factory: SourceFactory, path: Path, **options: str) -> tuple[bytes, JobContext]:
    job = JobContext(job_id="test", options=options)
    parts = []
    async with factory.open(url(path), {}).dump(job) as chunks:
        async for chunk in chunks:
            assert 0 < len(chunk) <= 64 * 1024
            parts.append(chunk)
    return b"".join(parts), job


def dump(factory: SourceFactory, path: Path, **options: str) -> tuple[bytes, JobContext]:
    return anyio.run(lambda: _dump(factory, path, **options))


async def _chunks(data: bytes, fail_at_end: BaseException | None = None) -> AsyncIterator[bytes]:
    for piece in split(data):
        yield piece
    if fail_at_end is not None:
        raise fail_at_end


def restore(
    factory: SourceFactory, data: bytes, target: Path, *, force: bool = False, fail: Exception | None = None
) -> None:
    job = JobContext(job_id="test", options={"force": "true" if force else "false"})
    anyio.run(lambda: factory.open(url(target), {}).restore(_chunks(data, fail), job))


def test_registered_for_the_sqlite_scheme(sqlite: SourceFactory) -> None:
    assert sqlite.name == "sqlite"
    assert "sqlite" in sqlite.schemes


def test_dump_then_restore_gives_identical_content(sqlite: SourceFactory, awkward_db: Path, tmp_path: Path) -> None:
    data, _ = dump(sqlite, awkward_db)
    target = tmp_path / "restored" / "copy.db"
    restore(sqlite, data, target)
    assert table_checksums(target) == table_checksums(awkward_db)


def test_dump_records_version_pages_and_size(sqlite: SourceFactory, awkward_db: Path) -> None:
    data, job = dump(sqlite, awkward_db)
    assert job.metadata["sqlite_version"] == sqlite3.sqlite_version
    assert job.metadata["server_version"] == sqlite3.sqlite_version
    assert job.metadata["size"] == len(data)
    assert job.metadata["page_count"] * job.metadata["page_size"] == len(data)
    assert job.metadata["database"] == str(awkward_db)


def test_dump_is_a_plain_sqlite_file(sqlite: SourceFactory, awkward_db: Path) -> None:
    data, _ = dump(sqlite, awkward_db)
    assert data.startswith(b"SQLite format 3\x00")


def test_dump_leaves_no_scratch_files(
    sqlite: SourceFactory, awkward_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    dump(sqlite, awkward_db)
    assert os.listdir(scratch) == []


def test_wal_database_round_trips_in_wal_mode(sqlite: SourceFactory, tmp_path: Path) -> None:
    source = make_awkward_db(tmp_path / "wal.db", blob_mib=1, wal=True)
    keeper = sqlite3.connect(source)  # keeps the WAL file alive with uncheckpointed pages
    keeper.execute("INSERT INTO nulls VALUES ('in the wal', 1, 2)")
    keeper.commit()
    try:
        data, _ = dump(sqlite, source)
        target = tmp_path / "wal-copy.db"
        restore(sqlite, data, target)
        assert table_checksums(target) == table_checksums(source)
        check = sqlite3.connect(target)
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        check.close()
    finally:
        keeper.close()


def test_dump_is_consistent_while_others_write(sqlite: SourceFactory, tmp_path: Path) -> None:
    source = tmp_path / "busy.db"
    setup = sqlite3.connect(source)
    setup.executescript("CREATE TABLE a (v BLOB); CREATE TABLE b (v BLOB);")
    setup.close()
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        connection = sqlite3.connect(source, timeout=30)
        while not stop.is_set():
            with connection:  # one transaction: a and b always grow together
                connection.execute("INSERT INTO a VALUES (randomblob(4000))")
                connection.execute("INSERT INTO b VALUES (randomblob(4000))")
            written[0] += 1
        connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written[0] < 500:
            threading.Event().wait(0.01)
        data, _ = dump(sqlite, source)
    finally:
        stop.set()
        thread.join()
    target = tmp_path / "snapshot.db"
    restore(sqlite, data, target)
    check = sqlite3.connect(target)
    count_a = check.execute("SELECT count(*) FROM a").fetchone()[0]
    count_b = check.execute("SELECT count(*) FROM b").fetchone()[0]
    assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    check.close()
    assert count_a == count_b >= 500


def test_missing_database_is_a_one_line_source_error(sqlite: SourceFactory, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist") as caught:
        dump(sqlite, tmp_path / "nope.db")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "nope.db").exists()  # never created by trying


def test_a_file_that_is_not_a_database_is_a_source_error(sqlite: SourceFactory, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(SourceError, match="is not a SQLite database"):
        dump(sqlite, bogus)


def test_a_directory_is_a_source_error(sqlite: SourceFactory, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a directory"):
        dump(sqlite, tmp_path)


def test_a_database_locked_by_a_writer_is_a_source_error_after_the_timeout(
    sqlite: SourceFactory, tmp_path: Path
) -> None:
    source = make_awkward_db(tmp_path / "locked.db", blob_mib=1)
    holder = sqlite3.connect(source, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(SourceError, match="locked"):
            dump(sqlite, source, busy_timeout="0.5")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_format_other_than_plain_is_a_config_error(sqlite: SourceFactory, awkward_db: Path) -> None:
    with pytest.raises(ConfigError, match="one format"):
        dump(sqlite, awkward_db, format="custom")


def test_restore_refuses_a_non_empty_target_without_force(
    sqlite: SourceFactory, awkward_db: Path, tmp_path: Path
) -> None:
    data, _ = dump(sqlite, awkward_db)
    target = tmp_path / "existing.db"
    target.write_bytes(b"precious")
    with pytest.raises(SourceError, match="not empty"):
        restore(sqlite, data, target)
    assert target.read_bytes() == b"precious"


def test_restore_with_force_replaces_the_target_and_its_stale_wal(
    sqlite: SourceFactory, awkward_db: Path, tmp_path: Path
) -> None:
    data, _ = dump(sqlite, awkward_db)
    target = make_awkward_db(tmp_path / "old.db", blob_mib=1, seed=99)
    (tmp_path / "old.db-wal").write_bytes(b"stale wal that must not be replayed")
    restore(sqlite, data, target, force=True)
    assert table_checksums(target) == table_checksums(awkward_db)
    assert not (tmp_path / "old.db-wal").exists() or (tmp_path / "old.db-wal").stat().st_size == 0


def test_restore_into_an_empty_file_needs_no_force(sqlite: SourceFactory, awkward_db: Path, tmp_path: Path) -> None:
    data, _ = dump(sqlite, awkward_db)
    target = tmp_path / "empty.db"
    target.touch()
    restore(sqlite, data, target)
    assert table_checksums(target) == table_checksums(awkward_db)


def test_restore_that_fails_at_the_end_of_the_stream_leaves_an_existing_target_untouched(
    sqlite: SourceFactory, awkward_db: Path, tmp_path: Path
) -> None:
    data, _ = dump(sqlite, awkward_db)
    target = make_awkward_db(tmp_path / "keep.db", blob_mib=1, seed=3)
    before = file_sha256(target)
    with pytest.raises(IntegrityError):
        restore(sqlite, data, target, force=True, fail=IntegrityError("tampered"))
    assert file_sha256(target) == before
    assert leftovers(tmp_path) == []


def test_restore_that_fails_leaves_a_missing_target_missing(
    sqlite: SourceFactory, awkward_db: Path, tmp_path: Path
) -> None:
    data, _ = dump(sqlite, awkward_db)
    target = tmp_path / "new" / "never.db"
    with pytest.raises(IntegrityError):
        restore(sqlite, data, target, fail=IntegrityError("tampered"))
    assert not target.exists()
    assert leftovers(target.parent) == []


def test_restore_of_bytes_that_are_not_a_database_fails_verification(sqlite: SourceFactory, tmp_path: Path) -> None:
    target = tmp_path / "target.db"
    target.write_bytes(b"old content")
    with pytest.raises(VerificationError):
        restore(sqlite, b"garbage" * 10000, target, force=True)
    assert target.read_bytes() == b"old content"
    assert leftovers(tmp_path) == []


def test_restore_to_a_directory_is_a_source_error(sqlite: SourceFactory, awkward_db: Path, tmp_path: Path) -> None:
    data, _ = dump(sqlite, awkward_db)
    with pytest.raises(SourceError, match="is a directory"):
        restore(sqlite, data, tmp_path, force=True)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///abs/path.db", "/abs/path.db"),
        ("sqlite:///with%20space/%C3%BC.db", "/with space/ü.db"),
        ("sqlite:////abs/path.db", "/abs/path.db"),  # sqlite:/// + an absolute path
    ],
)
def test_url_names_an_absolute_path(sqlite: SourceFactory, given: str, expected: str) -> None:
    assert sqlite.open(given, {}).path == expected  # type: ignore[attr-defined]


def test_relative_url_is_taken_from_the_working_directory(
    sqlite: SourceFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert sqlite.open("sqlite://rel.db", {}).path == str(tmp_path / "rel.db")  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", ["sqlite://", "sqlite:///db?mode=ro", "postgresql://x/y"])
def test_bad_urls_are_config_errors(sqlite: SourceFactory, bad: str) -> None:
    with pytest.raises(ConfigError):
        sqlite.open(bad, {})
