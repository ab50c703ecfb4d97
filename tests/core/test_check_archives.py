"""backstream check covers the archives beside the backups: every WAL record parses and names an
object that is there with its size and sha256; --read-data decodes each one to its recorded
plaintext; objects without a record are orphans that cleanup leaves alone.

(The binlog archive is checked in tests/plugins/mysql/test_pitr_mysql.py, which has a MariaDB server.)
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import anyio
import pytest
from backstream.jobs import open_repository
from backstream.plugins import Plugins
from backstream.repository import Manifest, SourceInfo, new_backup_id, utc_now
from fixtures.pitr import cli, ok

SEGMENTS = ["000000010000000000000001", "000000010000000000000002", "000000010000000000000003"]


@pytest.fixture
def archived(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A repository whose WAL archive holds three segments, encrypted with a passphrase."""
    repo = str(tmp_path / "repo")
    ok("init", "--repo", repo)
    env = dict(
        os.environ,
        BACKSTREAM_WAL_ENCRYPT="passphrase",
        BACKSTREAM_PASSPHRASE="archive pass",
        BACKSTREAM_AUDIT_LOG=str(tmp_path / "audit.log"),
    )
    for name in SEGMENTS:
        segment = tmp_path / name
        segment.write_bytes(name.encode() * 4096)
        pushed = cli("wal-push", "--repo", repo, str(segment), env=env)
        assert pushed.returncode == 0, pushed.stderr
    return repo, env


def stored(repo: str, name: str) -> Path:
    (path,) = [p for p in Path(repo, "wal", name[:8]).glob(name + ".*") if p.suffix != ".json"]
    return path


def check(repo: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    result = cli("check", "--repo", repo, "--json", *args, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_a_healthy_wal_archive_passes_check_and_read_data(archived: tuple[str, dict[str, str]]) -> None:
    repo, env = archived
    code, report = check(repo)
    assert (code, report["ok"], report["archived"]) == (0, True, 3)
    assert report["bytes_checked"] == sum(stored(repo, name).stat().st_size for name in SEGMENTS)
    code, report = check(repo, "--read-data", env=env)
    assert (code, report["ok"], report["read_data"]) == (0, True, True)


def test_a_changed_byte_in_an_archived_segment_is_a_sha256_problem(archived: tuple[str, dict[str, str]]) -> None:
    repo, _ = archived
    path = stored(repo, SEGMENTS[1])
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 1
    path.write_bytes(bytes(raw))
    code, report = check(repo)
    assert code == 1
    assert [(p["kind"], p["path"]) for p in report["problems"]] == [("sha256", f"wal/00000001/{path.name}")]


def test_a_segment_whose_object_is_gone_is_a_missing_problem(archived: tuple[str, dict[str, str]]) -> None:
    repo, _ = archived
    path = stored(repo, SEGMENTS[0])
    path.unlink()
    code, report = check(repo)
    assert code == 1
    assert [(p["kind"], p["path"]) for p in report["problems"]] == [("missing", f"wal/00000001/{path.name}")]


def test_a_record_that_does_not_parse_is_a_record_problem(archived: tuple[str, dict[str, str]]) -> None:
    repo, _ = archived
    record = Path(repo, "wal", "00000001", SEGMENTS[2] + ".json")
    record.write_text("{ not json")
    code, report = check(repo)
    assert code == 1
    assert [p["kind"] for p in report["problems"]] == ["record"]
    assert report["orphans"] == []  # its object is not called an orphan: the record is what is broken


def test_read_data_with_the_wrong_passphrase_is_a_data_problem_for_every_segment(
    archived: tuple[str, dict[str, str]],
) -> None:
    repo, env = archived
    code, report = check(repo, "--read-data", env={**env, "BACKSTREAM_PASSPHRASE": "wrong"})
    assert code == 1
    assert [p["kind"] for p in report["problems"]] == ["data"] * 3


def test_an_object_without_a_record_is_an_orphan_that_cleanup_leaves_alone(
    archived: tuple[str, dict[str, str]],
) -> None:
    repo, _ = archived
    Path(repo, "wal", "00000001", SEGMENTS[2] + ".json").unlink()  # as an interrupted push leaves it
    orphan = stored(repo, SEGMENTS[2])
    code, report = check(repo)
    assert code == 1 and report["archived"] == 2
    assert [(o["path"], o["reason"]) for o in report["orphans"]] == [
        (f"wal/00000001/{orphan.name}", "WAL archive: no record (an interrupted push)")
    ]
    cleaned = cli("cleanup", "--repo", repo, "--older-than", "0s", "--json")
    assert cleaned.returncode == 0, cleaned.stderr
    assert orphan.exists()  # a push may still be writing it: removing archive objects is left to the user
    (action,) = json.loads(cleaned.stdout)
    assert (action["path"], action["action"]) == (f"wal/00000001/{orphan.name}", "kept")
    assert "remove it by hand" in action["detail"]


def test_a_temporary_object_in_the_archive_is_a_note_not_an_orphan(archived: tuple[str, dict[str, str]]) -> None:
    """A push writes through a hidden temporary object: running now, or interrupted, check cannot tell."""
    repo, _ = archived
    temporary = Path(repo, "wal", "00000001", f".{SEGMENTS[0]}.zst.0123456789ab.partial")
    temporary.write_bytes(b"half a segment")
    code, report = check(repo)
    assert (code, report["orphans"]) == (0, [])
    assert any(temporary.name in note for note in report["notes"])


def test_an_object_beside_a_record_that_names_another_is_an_orphan(archived: tuple[str, dict[str, str]]) -> None:
    """A push interrupted under one codec and redone under another leaves the first object unnamed."""
    repo, _ = archived
    stale = Path(repo, "wal", "00000001", SEGMENTS[0] + ".lz4")
    stale.write_bytes(b"an older attempt")
    code, report = check(repo)
    assert code == 1
    assert [o["path"] for o in report["orphans"]] == [f"wal/00000001/{stale.name}"]


def test_read_data_reads_each_archived_object_once(archived: tuple[str, dict[str, str]]) -> None:
    repo, env = archived
    _, report = check(repo, "--read-data", env=env)
    assert report["bytes_checked"] == sum(stored(repo, name).stat().st_size for name in SEGMENTS)


async def commit_physical_backup(repo: str, start_wal: str, *, cluster: str = "1", wal_method: str = "none") -> str:
    """A physical backup's manifest, as ``backup --physical`` commits it (no objects: check only
    reads the WAL range from it)."""
    repository = await open_repository(Plugins.load(), repo)
    metadata = {"start_wal": start_wal, "stop_wal": start_wal, "wal_method": wal_method, "system_identifier": cluster}
    manifest = Manifest(
        backup_id=new_backup_id(utc_now()),
        repository_id=repository.repository_id,
        source=SourceInfo(kind="postgresql-physical", url="postgresql://db", metadata=metadata),
        started_at=utc_now(),
        finished_at=utc_now(),
    )
    await repository.commit(manifest)
    return manifest.backup_id


def test_a_hole_in_the_wal_archive_that_a_base_backup_needs_is_a_wal_problem(
    archived: tuple[str, dict[str, str]],
) -> None:
    """Seen from the repository alone: segments 1 and 3 are there, 2 is not, and a backup needs 1 on."""
    repo, _ = archived
    backup_id = anyio.run(commit_physical_backup, repo, SEGMENTS[0])
    for path in Path(repo, "wal", "00000001").glob(SEGMENTS[1] + "*"):
        path.unlink()
    code, report = check(repo)
    assert code == 1
    assert [(p["kind"], p["path"]) for p in report["problems"]] == [("wal", f"wal/00000001/{SEGMENTS[1]}.json")]
    assert backup_id in report["problems"][0]["detail"]


def test_the_end_of_the_wal_archive_is_no_hole(archived: tuple[str, dict[str, str]]) -> None:
    """The newest segments may simply not be archived yet: only a gap with later segments counts."""
    repo, _ = archived
    anyio.run(commit_physical_backup, repo, SEGMENTS[0])
    for path in Path(repo, "wal", "00000001").glob(SEGMENTS[2] + "*"):
        path.unlink()
    code, report = check(repo)
    assert (code, report["problems"]) == (0, [])


def test_an_uncompressed_segment_with_a_broken_record_is_not_called_an_orphan(tmp_path: Path) -> None:
    """With codec none the object is named like the record's file, without an extension: it is the
    only copy of the segment, and check must not suggest removing it."""
    repo = str(tmp_path / "repo")
    ok("init", "--repo", repo)
    segment = tmp_path / SEGMENTS[0]
    segment.write_bytes(b"w" * 8192)
    env = dict(os.environ, BACKSTREAM_WAL_COMPRESS="none")
    assert cli("wal-push", "--repo", repo, str(segment), env=env).returncode == 0
    assert Path(repo, "wal", "00000001", SEGMENTS[0]).exists()
    Path(repo, "wal", "00000001", SEGMENTS[0] + ".json").write_text("garbage")
    code, report = check(repo)
    assert code == 1 and [p["kind"] for p in report["problems"]] == ["record"]
    assert report["orphans"] == []


def test_another_clusters_backup_in_the_repository_makes_no_wal_hole(archived: tuple[str, dict[str, str]]) -> None:
    """The archive belongs to the cluster whose backups need it; another cluster's backup whose WAL
    names happen to fall where this archive has none says nothing about this archive."""
    repo, _ = archived
    anyio.run(commit_physical_backup, repo, SEGMENTS[1])  # this archive's cluster ("1"), wal=none
    for path in Path(repo, "wal", "00000001").glob(SEGMENTS[0] + "*"):
        path.unlink()
    anyio.run(partial(commit_physical_backup, repo, SEGMENTS[0], cluster="2", wal_method="fetch"))
    code, report = check(repo)
    assert (code, report["problems"]) == (0, [])
