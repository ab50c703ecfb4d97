"""Batch wal-push: archiving one segment also archives the following segments PostgreSQL marked
ready, and PostgreSQL's later calls for those return at once -- but only for exactly the archived
content, in the same repository. A pg_wal directory with archive_status/ is laid out by hand.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from backstream.pitr.wal import WalConflict, push
from backstream.pitr.walbatch import MARK_DIR
from backstream.pitr.walconfig import WalConfig
from fixtures.verify_cli import cli, make_env

NAMES = [f"0000000100000000000000{n:02X}" for n in range(1, 6)]


@pytest.fixture
def pg_wal(tmp_path: Path) -> Path:
    """Five segments; PostgreSQL has marked 2-5 ready (1 is the one it is archiving now)."""
    folder = tmp_path / "pg_wal"
    (folder / "archive_status").mkdir(parents=True)
    for index, name in enumerate(NAMES):
        (folder / name).write_bytes(bytes([index]) * 4096 + os.urandom(4096))
        if index:
            (folder / "archive_status" / f"{name}.ready").write_text("")
    return folder


def new_repo(tmp_path: Path, name: str = "repo") -> str:
    path = str(tmp_path / name)
    cli("init", "--repo", path, env=make_env(tmp_path))
    return path


def archived(repo: str) -> list[str]:
    return sorted(p.name[: -len(".json")] for p in Path(repo, "wal", "00000001").glob("*.json"))


def marks(pg_wal: Path) -> list[str]:
    return sorted(p.name for p in (pg_wal / MARK_DIR).glob("*.ok"))


@pytest.fixture(params=["lz4", "encrypted"])
def config(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WalConfig:
    """Batches apply on the general path (plugins): here through lz4, and through encryption."""
    repo = new_repo(tmp_path)
    if request.param == "lz4":
        return WalConfig(repo=repo, batch=3, compress="lz4")
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "batch test")
    monkeypatch.setenv("BACKSTREAM_AUDIT_LOG", str(tmp_path / "audit.log"))
    fast_kdf = {"kdf.t": "1", "kdf.m": "1024", "kdf.p": "1"}
    return WalConfig(repo=repo, batch=3, encrypt=("passphrase",), provider_options=fast_kdf)


def test_a_push_archives_the_next_ready_segments_and_marks_them(pg_wal: Path, config: WalConfig) -> None:
    assert push(config, str(pg_wal / NAMES[0])) is True
    assert archived(config.repo) == NAMES[:3]  # batch of 3: the segment itself and two ready ones
    assert marks(pg_wal) == [f"{NAMES[1]}.ok", f"{NAMES[2]}.ok"]


def test_the_later_call_for_a_segment_archived_ahead_returns_at_once_and_uses_the_mark(
    pg_wal: Path, config: WalConfig
) -> None:
    push(config, str(pg_wal / NAMES[0]))
    record = Path(config.repo, "wal", "00000001", f"{NAMES[1]}.json")
    written = record.stat().st_mtime_ns
    assert push(config, str(pg_wal / NAMES[1])) is False  # already archived: nothing stored again
    assert record.stat().st_mtime_ns == written
    assert f"{NAMES[1]}.ok" not in marks(pg_wal)
    assert push(config, str(pg_wal / NAMES[2])) is False
    assert archived(config.repo) == NAMES[:3]
    assert push(config, str(pg_wal / NAMES[3])) is True  # the first call without a mark starts the next batch
    assert archived(config.repo) == NAMES


def test_a_mark_is_not_trusted_when_the_file_changed(pg_wal: Path, config: WalConfig) -> None:
    push(config, str(pg_wal / NAMES[0]))
    (pg_wal / NAMES[1]).write_bytes(b"other content")
    with pytest.raises(WalConflict, match="already archived with different content"):
        push(config, str(pg_wal / NAMES[1]))


def test_a_mark_from_another_repository_is_not_trusted(pg_wal: Path, config: WalConfig, tmp_path: Path) -> None:
    push(config, str(pg_wal / NAMES[0]))
    other = WalConfig(repo=new_repo(tmp_path, "other"), batch=1, compress="lz4")
    assert push(other, str(pg_wal / NAMES[1])) is True  # really archived there
    assert archived(other.repo) == [NAMES[1]]


def test_a_follower_that_fails_does_not_fail_the_push_and_gets_no_mark(pg_wal: Path, config: WalConfig) -> None:
    conflicting = Path(config.repo, "wal", "00000001")
    earlier = _elsewhere(pg_wal, NAMES[1], b"archived earlier, differently")
    push(WalConfig(repo=config.repo, compress="lz4"), str(earlier))
    assert push(config, str(pg_wal / NAMES[0])) is True
    assert f"{NAMES[1]}.ok" not in marks(pg_wal)
    with pytest.raises(WalConflict):
        push(config, str(pg_wal / NAMES[1]))  # PostgreSQL's own call reports it
    assert (conflicting / f"{NAMES[1]}.json").exists()


@pytest.mark.parametrize(
    "settings", [{"compress": "lz4"}, {"batch": 4}], ids=["no batch", "local fast path"]
)
def test_nothing_is_archived_ahead_without_batch_or_on_the_local_fast_path(
    pg_wal: Path, tmp_path: Path, settings: dict[str, object]
) -> None:
    # (the fast path -- local, zstd or none, unencrypted -- has no set-up that a batch could share)
    config = WalConfig(repo=new_repo(tmp_path), **settings)  # type: ignore[arg-type]
    push(config, str(pg_wal / NAMES[0]))
    assert archived(config.repo) == [NAMES[0]]
    assert not (pg_wal / MARK_DIR).exists()


def test_a_mark_records_the_repository_and_the_content(pg_wal: Path, config: WalConfig) -> None:
    push(config, str(pg_wal / NAMES[0]))
    mark = json.loads((pg_wal / MARK_DIR / f"{NAMES[1]}.ok").read_text())
    assert mark["repo"] == config.repo and mark["size"] == (pg_wal / NAMES[1]).stat().st_size


def test_the_command_line_takes_batch_and_refuses_nonsense(pg_wal: Path, tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    env = {**make_env(tmp_path), "BACKSTREAM_WAL_COMPRESS": "lz4"}
    cli("wal-push", "--repo", repo, "--batch", "4", str(pg_wal / NAMES[0]), env=env)
    assert archived(repo) == NAMES[:4]
    refused = cli("wal-push", "--repo", repo, "--batch", "0", str(pg_wal / NAMES[4]), env=env, expect=2)
    assert "--batch must be between 1 and 64" in refused.stderr


def _elsewhere(pg_wal: Path, name: str, content: bytes) -> Path:
    folder = pg_wal.parent / "elsewhere"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(content)
    return folder / name
