"""The repository: config and init, time-sorted ids, manifests, catalog and statistics, locks.

Runs on the fsspec storage plugin (local directories and memory://), through the public registries.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from backstream import ConfigError, Plugins, RepositoryError, Storage
from backstream.repository import (
    STATUS_FAILED,
    LockInfo,
    Manifest,
    ObjectRecord,
    Repository,
    SourceInfo,
    backup_id_time,
    compute_stats,
    hold_lock,
    is_backup_id,
    new_backup_id,
    read_locks,
    redact_url,
    stale_reason,
)
from backstream.repository.blobs import write_small
from backstream.repository.lock import process_space, this_host
from hypothesis import given
from hypothesis import strategies as st

T0 = datetime(2026, 11, 25, 14, 30, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return Plugins.load()


@pytest.fixture(params=["file", "memory"])
def storage(request: pytest.FixtureRequest, plugins: Plugins, tmp_path: Path) -> Storage:
    if request.param == "file":
        return plugins.open_storage(str(tmp_path / "repo"))
    return plugins.open_storage(f"memory://test-{uuid.uuid4().hex}/repo")


def run(func, *args):  # type: ignore[no-untyped-def]
    return anyio.run(func, *args)


def manifest_for(
    backup_id: str, repository_id: str = "r1", *, status: str = "ok", size: int = 100, url: str = "sqlite:///a.db"
) -> Manifest:
    started = backup_id_time(backup_id)
    return Manifest(
        backup_id=backup_id,
        repository_id=repository_id,
        source=SourceInfo(
            kind="sqlite", url=url, database="/a.db", server_version="3.40.1", metadata={"page_count": 3}
        ),
        started_at=started,
        finished_at=started + timedelta(seconds=2),
        objects=(
            ObjectRecord(
                name="database.sqlite.zst",
                path=Repository.object_path(backup_id, "database.sqlite.zst"),
                stored_size=size // 2,
                stored_sha256="0" * 64,
                plaintext_size=size,
                codec="zstd",
                codec_options={"level": "3"},
            ),
        ),
        status=status,
    )


async def commit(repository: Repository, backup_id: str, **changes: Any) -> None:
    await repository.commit(manifest_for(backup_id, repository.repository_id, **changes))


# --- ids ---------------------------------------------------------------------------------------


def test_backup_id_has_the_documented_shape() -> None:
    backup_id = new_backup_id(T0)
    assert backup_id.startswith("20261125T143000Z-")
    assert is_backup_id(backup_id)
    assert len(backup_id) == len("20261125T143000Z-") + 6


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1)),
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=3650)),
)
def test_backup_ids_sort_by_time(start: datetime, later_by: timedelta) -> None:
    first = new_backup_id(start.replace(tzinfo=UTC))
    second = new_backup_id(start.replace(tzinfo=UTC) + later_by)
    assert sorted([second, first]) == [first, second]


def test_backup_id_time_is_the_start_second() -> None:
    assert backup_id_time(new_backup_id(T0 + timedelta(microseconds=999))) == T0


@pytest.mark.parametrize("bad", ["latest", "20261125T143000Z", "20261125T143000Z-XYZ123", "2026-11-25-abcdef"])
def test_malformed_ids_are_rejected(bad: str) -> None:
    assert not is_backup_id(bad)
    with pytest.raises(ConfigError):
        backup_id_time(bad)


# --- init and open -----------------------------------------------------------------------------


def test_init_writes_a_config_with_format_version_id_and_creation_time(storage: Storage) -> None:
    async def main() -> tuple[Repository, bytes]:
        repository = await Repository.init(storage)
        async with storage.open_read("backstream.json") as chunks:
            return repository, b"".join([c async for c in chunks])

    repository, raw = run(main)
    config = json.loads(raw)
    assert config["format_version"] == 1
    assert config["repository_id"] == repository.repository_id
    assert config["created_at"].endswith("Z")


def test_init_refuses_an_existing_repository(storage: Storage) -> None:
    run(Repository.init, storage)
    with pytest.raises(RepositoryError, match="already a backstream repository"):
        run(Repository.init, storage)


def test_open_of_an_uninitialised_location_hints_at_init(storage: Storage) -> None:
    with pytest.raises(RepositoryError, match="backstream init --repo") as caught:
        run(Repository.open, storage)
    assert "\n" not in str(caught.value)


def test_open_refuses_a_newer_repository_format(storage: Storage) -> None:
    config = {
        "format": "backstream-repository",
        "format_version": 99,
        "repository_id": "x",
        "created_at": "2026-01-01T00:00:00Z",
    }
    run(write_small, storage, "backstream.json", json.dumps(config).encode())
    with pytest.raises(RepositoryError, match="upgrade backstream"):
        run(Repository.open, storage)


def test_open_reads_back_the_same_repository(storage: Storage) -> None:
    created = run(Repository.init, storage)
    opened = run(Repository.open, storage)
    assert opened.repository_id == created.repository_id


# --- manifests and catalog ---------------------------------------------------------------------


def test_manifest_round_trips_through_json() -> None:
    manifest = manifest_for(new_backup_id(T0))
    again = Manifest.from_json(manifest.to_json(), where="test")
    assert again == manifest


def test_manifest_holds_the_documented_fields() -> None:
    document = manifest_for(new_backup_id(T0)).to_dict()
    for key in (
        "backup_id",
        "repository_id",
        "status",
        "parent",
        "started_at",
        "finished_at",
        "tool",
        "source",
        "objects",
    ):
        assert key in document
    assert set(document["objects"][0]) >= {
        "path",
        "stored_size",
        "stored_sha256",
        "plaintext_size",
        "codec",
        "cipher",
        "key_refs",
    }
    assert set(document["source"]) >= {"kind", "url", "database", "server_version", "metadata"}


def test_a_newer_manifest_format_is_refused() -> None:
    document = {"format": "backstream-manifest", "format_version": 2}
    with pytest.raises(RepositoryError, match="upgrade backstream"):
        Manifest.from_json(json.dumps(document).encode(), where="x")


def test_only_backups_with_a_manifest_are_listed(storage: Storage) -> None:
    committed, orphan = new_backup_id(T0), new_backup_id(T0 + timedelta(seconds=5))

    async def main() -> list[str]:
        repository = await Repository.init(storage)
        await write_small(storage, Repository.object_path(committed, "database.sqlite.zst"), b"data")
        await repository.commit(manifest_for(committed, repository.repository_id))
        await write_small(storage, Repository.object_path(orphan, "database.sqlite.zst"), b"half")
        return [m.backup_id for m in await repository.manifests()]

    assert run(main) == [committed]


def test_latest_is_the_newest_good_backup(storage: Storage) -> None:
    async def main() -> tuple[str, str]:
        repository = await Repository.init(storage)
        ids = [new_backup_id(T0 + timedelta(minutes=i)) for i in range(3)]
        for backup_id in ids:
            await commit(repository, backup_id)
        return (await repository.resolve("latest")).backup_id, ids[-1]

    found, expected = run(main)
    assert found == expected


def test_latest_can_be_limited_to_one_source(storage: Storage) -> None:
    async def main() -> tuple[str, str]:
        repository = await Repository.init(storage)
        older = new_backup_id(T0)
        await commit(repository, older, url="sqlite:///a.db")
        await commit(repository, new_backup_id(T0 + timedelta(hours=1)), url="sqlite:///b.db")
        found = await repository.resolve("latest", match=lambda m: m.source.url == "sqlite:///a.db")
        return found.backup_id, older

    found, expected = run(main)
    assert found == expected


def test_a_unique_id_prefix_resolves_and_an_ambiguous_one_is_an_error(storage: Storage) -> None:
    async def main() -> str:
        repository = await Repository.init(storage)
        first = new_backup_id(T0)
        await commit(repository, first)
        await commit(repository, new_backup_id(T0 + timedelta(seconds=1)))
        found = (await repository.resolve(first[:16] + "-" + first[17:19])).backup_id
        assert found == first
        with pytest.raises(ConfigError, match="ambiguous"):
            await repository.resolve("20261125T1430")
        with pytest.raises(RepositoryError, match="no backup"):
            await repository.resolve("19990101")
        return found

    run(main)


def test_show_of_an_unknown_id_is_a_repository_error(storage: Storage) -> None:
    async def main() -> None:
        repository = await Repository.init(storage)
        await repository.manifest(new_backup_id(T0))

    with pytest.raises(RepositoryError, match="no backup"):
        run(main)


def test_delete_removes_the_manifest_and_every_object(storage: Storage) -> None:
    async def main() -> list[str]:
        repository = await Repository.init(storage)
        backup_id = new_backup_id(T0)
        await write_small(storage, Repository.object_path(backup_id, "database.sqlite.zst"), b"data")
        await commit(repository, backup_id)
        await repository.delete(backup_id)
        assert await repository.manifests() == []
        return await storage.list(f"backups/{backup_id}/")

    assert run(main) == []


def test_stats_count_success_rate_sizes_and_newest_good_backup() -> None:
    good = [manifest_for(new_backup_id(T0 + timedelta(hours=i)), size=100 * (i + 1)) for i in range(3)]
    failed = [manifest_for(new_backup_id(T0 + timedelta(hours=9)), status=STATUS_FAILED)]
    stats = compute_stats(list(reversed(good)), failed)
    assert stats.backups == 3
    assert stats.failed == 1
    assert stats.success_rate == pytest.approx(0.75)
    assert stats.plaintext_size == 600
    assert stats.stored_size == 300
    assert stats.newest is not None and stats.newest.backup_id == good[-1].backup_id
    assert stats.oldest is not None and stats.oldest.backup_id == good[0].backup_id
    assert json.loads(json.dumps(stats.to_dict()))["backups"] == 3


def test_stats_of_an_empty_repository_have_no_rate() -> None:
    stats = compute_stats([], [])
    assert stats.backups == 0
    assert stats.success_rate is None
    assert stats.newest is None


# --- locks -------------------------------------------------------------------------------------


def _lock(**changes: object) -> LockInfo:
    fields: dict[str, object] = {
        "lock_id": "x",
        "operation": "backup",
        "exclusive": False,
        "host": this_host(),
        "pid": os.getpid(),
        "started_at": datetime.now(UTC),
        "heartbeat_at": datetime.now(UTC),
        "stale_after": 300.0,
        "process_space": process_space(),
    }
    fields.update(changes)
    return LockInfo(**fields)  # type: ignore[arg-type]


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_live_lock_of_this_process_is_not_stale() -> None:
    assert stale_reason(_lock()) is None


def test_a_lock_whose_process_is_gone_on_this_host_is_stale() -> None:
    assert "is gone" in (stale_reason(_lock(pid=_dead_pid())) or "")


def test_a_lock_whose_pid_was_reused_by_another_process_is_stale() -> None:
    assert "is gone" in (stale_reason(_lock(process_start="1")) or "")


def test_a_lock_from_another_container_with_our_host_name_is_judged_by_its_heartbeat() -> None:
    other_space = _lock(pid=_dead_pid(), process_space="another-boot/pid:[1]")
    assert stale_reason(other_space) is None
    expired = _lock(
        pid=_dead_pid(), process_space="another-boot/pid:[1]", heartbeat_at=datetime.now(UTC) - timedelta(hours=1)
    )
    assert "heartbeat" in (stale_reason(expired) or "")


def test_a_lock_of_another_host_is_stale_only_after_its_heartbeat_expires() -> None:
    fresh = _lock(host="elsewhere", pid=1)
    old = _lock(host="elsewhere", pid=1, heartbeat_at=datetime.now(UTC) - timedelta(seconds=301))
    assert stale_reason(fresh) is None
    assert "heartbeat" in (stale_reason(old) or "")


def test_shared_locks_coexist(storage: Storage) -> None:
    async def main() -> int:
        async with hold_lock(storage, "backup", exclusive=False), hold_lock(storage, "backup", exclusive=False):
            return len(await read_locks(storage))

    assert run(main) == 2


def test_an_exclusive_lock_conflicts_with_a_live_lock_and_leaves_nothing_behind(storage: Storage) -> None:
    async def main() -> int:
        async with hold_lock(storage, "backup", exclusive=False):
            with pytest.raises(RepositoryError, match="repository is locked"):
                async with hold_lock(storage, "delete", exclusive=True):
                    pass
            return len(await read_locks(storage))

    assert run(main) == 1


def test_a_lock_is_released_when_its_block_fails(storage: Storage) -> None:
    async def main() -> int:
        with pytest.raises(ValueError, match="boom"):
            async with hold_lock(storage, "backup", exclusive=False):
                raise ValueError("boom")
        return len(await read_locks(storage))

    assert run(main) == 0


def test_a_stale_lock_is_broken_with_a_warning(storage: Storage, caplog: pytest.LogCaptureFixture) -> None:
    stale = _lock(lock_id="20200101T000000Z-dead", pid=_dead_pid(), exclusive=True)

    async def main() -> list[str]:
        await write_small(storage, stale.path, stale.to_json())
        async with hold_lock(storage, "delete", exclusive=True):
            return [path for path, _ in await read_locks(storage)]

    with caplog.at_level(logging.WARNING):
        paths = run(main)
    assert stale.path not in paths
    assert "breaking stale lock" in caplog.text


def test_a_held_lock_keeps_its_heartbeat_fresh(storage: Storage) -> None:
    async def main() -> tuple[datetime, datetime]:
        async with hold_lock(storage, "backup", exclusive=False, heartbeat_interval=0.05) as mine:
            await anyio.sleep(0.3)
            ((_, info),) = await read_locks(storage)
            assert info is not None
            return mine.heartbeat_at, info.heartbeat_at

    first, latest = run(main)
    assert latest > first


# --- urls --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://bob:s3cret@db:5432/app", "postgresql://bob@db:5432/app"),
        ("mysql://:s3cret@db/app", "mysql://db/app"),
        ("postgresql://bob@db/app?password=s3cret&sslmode=require", "postgresql://bob@db/app?sslmode=require"),
        ("sqlite:///abs/path.db", "sqlite:///abs/path.db"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
    ],
)
def test_redact_url_drops_passwords(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_deleting_a_backup_from_a_local_repository_leaves_no_empty_folders(plugins: Plugins, tmp_path: Path) -> None:
    root = tmp_path / "repo"

    async def main() -> None:
        repository = await Repository.init(plugins.open_storage(str(root)))
        kept, gone = new_backup_id(T0), new_backup_id(T0 + timedelta(hours=1))
        for backup_id in (kept, gone):
            await write_small(repository.storage, Repository.object_path(backup_id, "database.sqlite.zst"), b"data")
            await commit(repository, backup_id)
        await repository.delete(gone)
        assert not (root / "backups" / gone).exists()
        await repository.delete(kept)
        assert not (root / "backups" / kept).exists()
        assert (root / "backups").is_dir()  # top-level folders stay
        # ... and a deleted backup's folders can be made again
        await write_small(repository.storage, Repository.object_path(gone, "again.zst"), b"x")

    run(main)
