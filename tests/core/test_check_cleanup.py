"""``backstream check`` and ``cleanup`` on real repositories of SQLite backups: corruption at rest,
end-to-end reads of an encrypted repository, orphans and their removal.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import pytest
from backstream import Plugins
from backstream.repository import Repository, new_backup_id
from backstream.repository.check import check_repository
from fixtures.s3 import S3Bucket
from fixtures.sqlite_db import file_sha256
from fixtures.verify_cli import FAST_KDF, cli, cli_json, make_env, small_sqlite

ORPHAN_ID = "20200101T000000Z-abcdef"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[dict[str, str], str, str, dict[str, object]]:
    """An environment, a repository with one backup, and that backup's manifest (as JSON)."""
    env = make_env(tmp_path)
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=env)
    source = f"sqlite://{small_sqlite(tmp_path / 'source.db')}"
    made = cli_json("backup", source, "--repo", repo, env=env)
    manifest = json.loads(Path(repo, "backups", made["backup_id"], "manifest.json").read_text())
    return env, repo, made["backup_id"], manifest


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_check_passes_on_a_healthy_repository(setup: tuple[dict[str, str], str, str, dict[str, object]]) -> None:
    env, repo, _, _ = setup
    result = cli("check", "--repo", repo, env=env)
    assert "OK: 1 manifests, 1 objects" in result.stdout


def test_a_changed_byte_makes_check_fail_and_name_the_object(
    setup: tuple[dict[str, str], str, str, dict[str, object]],
) -> None:
    env, repo, _, manifest = setup
    stored = manifest["objects"][0]["path"]  # type: ignore[index]
    flip_a_byte(Path(repo, stored))
    result = cli("check", "--repo", repo, env=env, expect=1)
    assert f"PROBLEM sha256: {stored}" in result.stdout
    assert "FAILED: 1 problems" in result.stdout


def test_restore_refuses_a_corrupted_object_and_leaves_the_target_untouched(
    setup: tuple[dict[str, str], str, str, dict[str, object]], tmp_path: Path
) -> None:
    env, repo, backup_id, manifest = setup
    flip_a_byte(Path(repo, manifest["objects"][0]["path"]))  # type: ignore[index]
    target = small_sqlite(tmp_path / "target.db", rows=3)
    before = file_sha256(target)
    result = cli("restore", backup_id, "--repo", repo, "--to", f"sqlite://{target}", "--force", env=env, expect=3)
    assert "modified or corrupted" in result.stderr
    assert file_sha256(target) == before


def test_check_read_data_passes_on_a_healthy_encrypted_repository(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    env["BACKSTREAM_PASSPHRASE"] = "a passphrase for the check test"
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=env)
    source = f"sqlite://{small_sqlite(tmp_path / 'source.db')}"
    cli("backup", source, "--repo", repo, "--encrypt", "passphrase", *FAST_KDF, env=env)
    report = cli_json("check", "--repo", repo, "--read-data", env=env)
    assert report["ok"] is True
    assert report["read_data"] is True
    assert report["objects"] == 1


def test_check_read_data_fails_without_the_key(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    env["BACKSTREAM_PASSPHRASE"] = "the right passphrase"
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=env)
    cli(
        "backup",
        f"sqlite://{small_sqlite(tmp_path / 's.db')}",
        "--repo",
        repo,
        "--encrypt",
        "passphrase",
        *FAST_KDF,
        env=env,
    )
    env["BACKSTREAM_PASSPHRASE"] = "a wrong passphrase"
    report = cli_json("check", "--repo", repo, "--read-data", env=env, expect=1)
    assert [p["kind"] for p in report["problems"]] == ["data"]


def make_orphans(repo: str, backup_id: str) -> tuple[Path, Path]:
    """An object of a backup with no manifest (old), and a leftover temp object beside a named one."""
    lost = Path(repo, "backups", ORPHAN_ID, "data", "dump.zst")
    lost.parent.mkdir(parents=True)
    lost.write_bytes(b"left behind by an interrupted backup")
    partial = Path(repo, "backups", backup_id, "data", ".dump.zst.0123456789ab.partial")
    partial.write_bytes(b"half written")
    return lost, partial


def test_check_reports_orphans(setup: tuple[dict[str, str], str, str, dict[str, object]]) -> None:
    env, repo, backup_id, _ = setup
    lost, partial = make_orphans(repo, backup_id)
    report = cli_json("check", "--repo", repo, env=env, expect=1)
    reasons = {o["path"]: o["reason"] for o in report["orphans"]}
    assert reasons[str(lost.relative_to(repo))].startswith("no manifest")
    assert reasons[str(partial.relative_to(repo))] == "temporary object of an unfinished write"
    assert report["problems"] == []


def test_cleanup_removes_old_orphans_and_keeps_every_named_object(
    setup: tuple[dict[str, str], str, str, dict[str, object]],
) -> None:
    env, repo, backup_id, manifest = setup
    lost, _ = make_orphans(repo, backup_id)
    # the backup itself is seconds old: its temp object stays within a 1h grace period, the 2020 one goes
    result = cli("cleanup", "--repo", repo, "--older-than", "1h", env=env)
    assert f"removed: {lost.relative_to(repo)}" in result.stdout
    assert not lost.exists()
    assert Path(repo, manifest["objects"][0]["path"]).exists()  # type: ignore[index]
    assert Path(repo, "backups", backup_id, "manifest.json").exists()
    cli("cleanup", "--repo", repo, "--older-than", "0s", env=env)
    assert cli("check", "--repo", repo, env=env).returncode == 0
    assert cli_json("list", "--repo", repo, env=env)[0]["backup_id"] == backup_id


def test_cleanup_dry_run_removes_nothing(setup: tuple[dict[str, str], str, str, dict[str, object]]) -> None:
    env, repo, backup_id, _ = setup
    lost, partial = make_orphans(repo, backup_id)
    result = cli("cleanup", "--repo", repo, "--older-than", "0s", "--dry-run", env=env)
    assert "would remove 2 of 2 orphans" in result.stdout
    assert lost.exists() and partial.exists()


def _empty_backup_folder(repo: str, backup_id: str, *, age: float) -> Path:
    """``backups/<id>/data/`` with nothing in it, as a backup killed after making it leaves it."""
    folder = Path(repo, "backups", backup_id, "data")
    folder.mkdir(parents=True)
    then = folder.stat().st_mtime - age
    for path in (folder, folder.parent):
        os.utime(path, (then, then))
    return folder


def test_check_lists_an_empty_backup_folder_without_a_manifest_and_cleanup_removes_it(
    setup: tuple[dict[str, str], str, str, dict[str, object]],
) -> None:
    env, repo, backup_id, _ = setup
    folder = _empty_backup_folder(repo, ORPHAN_ID, age=7200)
    report = cli_json("check", "--repo", repo, env=env, expect=1)
    assert [(o["path"], o["reason"]) for o in report["orphans"]] == [
        (f"backups/{ORPHAN_ID}/", "empty folder without a manifest (an interrupted backup)")
    ]
    dry = cli("cleanup", "--repo", repo, "--dry-run", env=env)
    assert f"would remove: backups/{ORPHAN_ID}/" in dry.stdout and folder.is_dir()
    cli("cleanup", "--repo", repo, env=env)
    assert not folder.parent.exists()
    assert Path(repo, "backups").is_dir() and Path(repo, "backups", backup_id, "manifest.json").exists()
    assert cli("check", "--repo", repo, env=env).returncode == 0


def test_cleanup_keeps_an_empty_backup_folder_younger_than_the_grace_period(
    setup: tuple[dict[str, str], str, str, dict[str, object]],
) -> None:
    env, repo, _, _ = setup
    folder = _empty_backup_folder(repo, ORPHAN_ID, age=60)  # a backup may be about to write into it
    result = cli("cleanup", "--repo", repo, env=env)
    assert f"kept: backups/{ORPHAN_ID}/" in result.stdout
    assert folder.is_dir()


def test_an_empty_folder_inside_a_committed_backup_is_not_an_orphan(
    setup: tuple[dict[str, str], str, str, dict[str, object]],
) -> None:
    env, repo, backup_id, _ = setup
    Path(repo, "backups", backup_id, "drills").mkdir()
    assert cli_json("check", "--repo", repo, env=env)["orphans"] == []


def test_check_flags_a_stale_lock_and_cleanup_removes_it(
    setup: tuple[dict[str, str], str, str, dict[str, object]],
) -> None:
    env, repo, _, _ = setup
    lock = Path(repo, "locks", "stale.json")
    old = "2020-01-01T00:00:00.000000Z"
    lock.write_text(
        json.dumps(
            {
                "format": "backstream-lock",
                "lock_id": "stale",
                "operation": "backup",
                "exclusive": False,
                "host": "elsewhere",
                "pid": 1,
                "started_at": old,
                "heartbeat_at": old,
                "stale_after": 300.0,
            }
        )
    )
    report = cli_json("check", "--repo", repo, env=env, expect=1)
    assert report["orphans"][0]["reason"].startswith("stale lock")
    cli("cleanup", "--repo", repo, env=env)
    assert not lock.exists()


def test_a_missing_object_fails_check(setup: tuple[dict[str, str], str, str, dict[str, object]]) -> None:
    env, repo, _, manifest = setup
    os.remove(Path(repo, manifest["objects"][0]["path"]))  # type: ignore[index]
    report = cli_json("check", "--repo", repo, env=env, expect=1)
    assert [p["kind"] for p in report["problems"]] == ["missing"]


def test_an_unreadable_manifest_fails_check_and_cleanup_keeps_its_objects(
    setup: tuple[dict[str, str], str, str, dict[str, object]],
) -> None:
    env, repo, backup_id, manifest = setup
    Path(repo, "backups", backup_id, "manifest.json").write_text("{ not json")
    report = cli_json("check", "--repo", repo, env=env, expect=1)
    assert [p["kind"] for p in report["problems"]] == ["manifest"]
    assert report["orphans"] == []
    cli("cleanup", "--repo", repo, "--older-than", "0s", env=env)
    assert Path(repo, manifest["objects"][0]["path"]).exists()  # type: ignore[index]


def test_check_lists_an_abandoned_s3_multipart_upload_and_cleanup_aborts_it(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    env = {**make_env(tmp_path), **{k: v for k, v in os.environ.items() if k.startswith("AWS_")}}
    option = ["--storage-option", f"endpoint_url={s3_bucket.server.endpoint_url}"]
    cli("init", "--repo", s3_bucket.url, *option, env=env)
    source = f"sqlite://{small_sqlite(tmp_path / 'source.db')}"
    cli("backup", source, "--repo", s3_bucket.url, *option, env=env)
    key = f"{s3_bucket.prefix}/backups/{ORPHAN_ID}/data/dump.zst"
    upload = s3_bucket.client.create_multipart_upload(Bucket=s3_bucket.name, Key=key)["UploadId"]
    s3_bucket.client.upload_part(Bucket=s3_bucket.name, Key=key, UploadId=upload, PartNumber=1, Body=b"part")
    elsewhere = s3_bucket.client.create_multipart_upload(Bucket=s3_bucket.name, Key="other/thing")["UploadId"]

    report = cli_json("check", "--repo", s3_bucket.url, *option, env=env, expect=1)
    (orphan,) = report["orphans"]
    assert orphan["path"] == f"backups/{ORPHAN_ID}/data/dump.zst" and orphan["upload_id"] == upload
    assert "incomplete multipart upload" in orphan["reason"] and report["problems"] == []

    # (moto reports every upload as initiated in 2010, so the grace period is not exercised here;
    # it is the same age test as for other orphans, above)
    cli("cleanup", "--repo", s3_bucket.url, *option, "--older-than", "1h", env=env)
    assert [u["UploadId"] for u in s3_bucket.multipart_uploads()] == [elsewhere]  # outside the repository
    assert cli("check", "--repo", s3_bucket.url, *option, env=env).returncode == 0


def test_the_multipart_upload_of_a_running_backup_is_not_an_orphan(s3_bucket: S3Bucket) -> None:
    async def main() -> list[str]:
        plugins = Plugins.load()
        repository = await Repository.init(plugins.open_storage(s3_bucket.url, **s3_bucket.storage_options))
        backup_id = new_backup_id()
        async with repository.lock("backup", exclusive=False, backup_id=backup_id):
            key = f"{s3_bucket.prefix}/backups/{backup_id}/data/dump.zst"
            s3_bucket.client.create_multipart_upload(Bucket=s3_bucket.name, Key=key)
            report = await check_repository(repository)
        return [o.path for o in report.orphans]

    assert anyio.run(main) == []
