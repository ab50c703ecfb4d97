"""PostgreSQL point-in-time recovery end to end from the CLI: archive_command = backstream wal-push,
a physical base backup, three batches of rows, restores to a time and to an LSN between batches 2 and 3.

One archiving server for the module (its own cluster: archive_mode needs a restart); restored
servers run on other ports as the postgres user and are stopped after each test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import psycopg
import pytest
from backstream import JobContext, Plugins, SourceError
from fixtures.pitr import BACKSTREAM, cli, enable_archiving, ok, postgres_owned_dir
from fixtures.postgres import PostgresServer, _free_port, start_postgres
from fixtures.processes import child_processes

SEGMENT_A = "000000010000000000000001"


@dataclass(frozen=True)
class Scenario:
    server: PostgresServer
    repo: str
    backup_id: str
    between_2_and_3: str  # a server time after batch 2 committed and before batch 3
    lsn_after_2: str
    segments_after_backup: list[str]


@pytest.fixture(scope="module")
def scenario(server_side_backstream: str) -> Iterator[Scenario]:
    base = postgres_owned_dir("backstream-pitr-repo-")
    try:
        with start_postgres() as server:
            yield _archive_three_batches(server, str(base / "repo"))
    finally:  # once the server is down: its archiver would otherwise make the repository again
        shutil.rmtree(base, ignore_errors=True)


def _archive_three_batches(server: PostgresServer, repo: str) -> Scenario:
    """Archiving set up by ``pitr setup --apply`` + restart, a base backup, then three batches of rows."""
    enable_archiving(server, repo)
    backup_id = ok("backup", server.url(), "--physical", "--repo", repo).strip()
    segments: list[str] = []
    with server.connect() as conn:
        conn.execute("CREATE TABLE rows (batch int NOT NULL, n int NOT NULL)")

        def batch(number: int) -> None:
            conn.execute("INSERT INTO rows SELECT %s, g FROM generate_series(1, 100) g", (number,))
            row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
            assert row is not None
            segments.append(row[0])

        batch(1)
        time.sleep(1.1)
        batch(2)
        lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        time.sleep(1.1)
        between = conn.execute(
            "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        ).fetchone()
        time.sleep(1.1)
        batch(3)
        deadline = time.monotonic() + 60
        while not Path(repo, "wal", "00000001", segments[-1] + ".json").exists():
            assert time.monotonic() < deadline, "the last segment was not archived within 60 s"
            time.sleep(0.2)
    assert lsn is not None and between is not None
    return Scenario(server, repo, backup_id, between[0] + "+00", lsn[0], segments)


@pytest.fixture
def restored_dir(restore_parent: Path) -> Path:
    """A new data directory path (not created) under a postgres-owned parent; its server is stopped after."""
    return restore_parent / "data"


def _batches(server: PostgresServer, port: int) -> list[int]:
    with psycopg.connect(
        host="127.0.0.1", port=port, user=server.user, password=server.password, dbname="postgres", autocommit=True
    ) as conn:
        in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        assert in_recovery == (False,), "the restored server should have promoted at the target"
        return [row[0] for row in conn.execute("SELECT DISTINCT batch FROM rows ORDER BY batch").fetchall()]


def test_physical_backup_manifest_records_lsns_timeline_and_wal_range(scenario: Scenario) -> None:
    shown = json.loads(Path(scenario.repo, "backups", scenario.backup_id, "manifest.json").read_text())
    metadata = shown["source"]["metadata"]
    assert shown["source"]["kind"] == "postgresql-physical"
    assert metadata["timeline"] == 1
    assert metadata["backup_from"] == "primary"  # from backup_label: what verify-pitr's WAL rule needs
    assert metadata["start_lsn"] and metadata["stop_lsn"]
    assert metadata["start_wal"] <= metadata["stop_wal"]
    assert [obj["name"] for obj in shown["objects"]] == ["base.tar"]
    for segment in (metadata["start_wal"], metadata["stop_wal"]):
        assert Path(scenario.repo, "wal", "00000001", segment + ".json").exists(), f"{segment} not archived"


def test_restore_to_time_between_batch_2_and_3_has_exactly_batches_1_and_2(
    scenario: Scenario, restored_dir: Path
) -> None:
    port = _free_port()
    result = cli(
        "restore", "latest", "--repo", scenario.repo, "--to-dir", str(restored_dir),
        "--target-time", scenario.between_2_and_3, "--start", "--port", str(port),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "promoted" in result.stdout
    assert _batches(scenario.server, port) == [1, 2]
    assert oct(restored_dir.stat().st_mode & 0o777) == "0o700"


def test_restore_to_lsn_after_batch_2_with_wal_prefetch_has_exactly_batches_1_and_2(
    scenario: Scenario, restored_dir: Path
) -> None:
    port = _free_port()
    result = cli(
        "restore", scenario.backup_id, "--repo", scenario.repo, "--to-dir", str(restored_dir),
        "--target-lsn", scenario.lsn_after_2, "--start", "--port", str(port),
        env=dict(os.environ, BACKSTREAM_WAL_PREFETCH="3"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "prefetch = 3" in (restored_dir / "backstream-wal.toml").read_text()
    assert _batches(scenario.server, port) == [1, 2]


def test_restore_with_a_missing_wal_segment_stops_naming_it(scenario: Scenario, restored_dir: Path) -> None:
    holey = restored_dir.parent / "holey-repo"
    shutil.copytree(scenario.repo, holey, symlinks=True)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres:postgres", str(holey)], check=True)
    missing = scenario.segments_after_backup[0]  # holds batch 1; later segments exist
    for path in Path(holey, "wal", "00000001").glob(missing + ".*"):
        path.unlink()
    port = _free_port()
    result = cli(
        "restore", "latest", "--repo", str(holey), "--to-dir", str(restored_dir),
        "--target-time", scenario.between_2_and_3, "--start", "--port", str(port),
    )  # fmt: skip
    assert result.returncode != 0
    assert missing in result.stderr, result.stderr
    assert "missing from the archive" in result.stderr


def test_verify_pitr_sees_a_switched_segment_arrive_and_reports_the_window(scenario: Scenario) -> None:
    out = ok("verify-pitr", scenario.server.url(), "--repo", scenario.repo, "--json")
    window = json.loads(out)
    assert Path(scenario.repo, "wal", "00000001", window["segment"] + ".json").exists()
    assert window["recoverable_from_backup"] == scenario.backup_id
    assert window["newest_wal"] == window["segment"]
    assert window["complete"] is True and window["missing_wal"] is None


def test_pitr_setup_prints_archive_settings_and_says_restart(scenario: Scenario) -> None:
    out = ok("pitr", "setup", scenario.server.url(), "--repo", scenario.repo)
    assert "archive_mode = 'on'" in out
    assert f"backstream wal-push --repo {scenario.repo} %p" in out
    assert "restart" in out


def test_pitr_setup_refuses_a_repository_that_was_never_initialised(scenario: Scenario, tmp_path: Path) -> None:
    """Applied, it would make every archive attempt fail while WAL piles up on the server."""
    result = cli("pitr", "setup", scenario.server.url(), "--repo", str(tmp_path / "nothing"), "--apply")
    assert result.returncode != 0 and "backstream init" in result.stderr
    with scenario.server.connect() as conn:
        (command,) = conn.execute("SHOW archive_command").fetchone()
    assert f"--repo {scenario.repo} " in command  # unchanged


def test_pitr_setup_only_prints_without_opening_the_repository(scenario: Scenario, tmp_path: Path) -> None:
    """Printing the settings (no --apply) works from a host that cannot reach the repository."""
    result = cli("pitr", "setup", scenario.server.url(), "--repo", str(tmp_path / "elsewhere"))
    assert result.returncode == 0, result.stderr
    assert f"--repo {tmp_path / 'elsewhere'} %p" in result.stdout


def test_pitr_setup_writes_a_relative_repository_as_an_absolute_path(scenario: Scenario) -> None:
    """PostgreSQL runs archive_command inside its data directory: a relative path would point there."""
    parent = Path(scenario.repo).parent
    result = subprocess.run(
        [BACKSTREAM, "pitr", "setup", scenario.server.url(), "--repo", Path(scenario.repo).name],
        cwd=parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"wal-push --repo {scenario.repo} %p" in result.stdout


# --- wal-push / wal-fetch without a server -----------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> str:
    path = str(tmp_path / "repo")
    ok("init", "--repo", path)
    return path


def _segment(tmp_path: Path, content: bytes, name: str = SEGMENT_A) -> Path:
    folder = tmp_path / secrets_dir()
    folder.mkdir()
    path = folder / name
    path.write_bytes(content)
    return path


def secrets_dir() -> str:
    return "seg-" + os.urandom(4).hex()


def test_wal_push_of_an_identical_segment_again_succeeds(repo: str, tmp_path: Path) -> None:
    segment = _segment(tmp_path, os.urandom(1 << 20) * 16)
    assert cli("wal-push", "--repo", repo, str(segment)).returncode == 0
    assert cli("wal-push", "--repo", repo, str(segment)).returncode == 0


def test_wal_push_of_different_content_under_an_archived_name_fails_loudly(repo: str, tmp_path: Path) -> None:
    assert cli("wal-push", "--repo", repo, str(_segment(tmp_path, b"a" * 4096))).returncode == 0
    result = cli("wal-push", "--repo", repo, str(_segment(tmp_path, b"b" * 4096)))
    assert result.returncode != 0
    assert "already archived with different content" in result.stderr


def test_wal_push_into_a_repository_it_cannot_write_fails_in_one_line(repo: str, tmp_path: Path) -> None:
    """PostgreSQL logs what archive_command prints, on every retry: one line, not a traceback.
    (A file where the wal/ directory belongs stands in for missing permissions, which root ignores.)"""
    Path(repo, "wal").write_text("in the way")
    result = cli("wal-push", "--repo", repo, str(_segment(tmp_path, b"a" * 4096)))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("backstream: error: cannot ")


def test_wal_fetch_of_a_file_not_archived_exits_1(repo: str, tmp_path: Path) -> None:
    result = cli("wal-fetch", "--repo", repo, SEGMENT_A, str(tmp_path / "out"))
    assert result.returncode == 1
    assert "not in the WAL archive" in result.stderr
    assert not (tmp_path / "out").exists()


def test_wal_fetch_of_a_corrupted_archive_exits_above_125_so_recovery_aborts(repo: str, tmp_path: Path) -> None:
    assert cli("wal-push", "--repo", repo, str(_segment(tmp_path, b"x" * 8192))).returncode == 0
    stored = Path(repo, "wal", "00000001", SEGMENT_A + ".zst")
    stored.write_bytes(stored.read_bytes()[:-1] + b"\0")
    result = cli("wal-fetch", "--repo", repo, SEGMENT_A, str(tmp_path / "out"))
    assert result.returncode > 125
    assert "corrupted" in result.stderr


def test_wal_push_and_fetch_round_trip_history_files_with_encryption_from_the_environment(
    repo: str, tmp_path: Path
) -> None:
    env = dict(os.environ, BACKSTREAM_REPO=repo, BACKSTREAM_WAL_ENCRYPT="passphrase", BACKSTREAM_PASSPHRASE="pitr pass")
    content = b"1\t0/3000000\tno recovery target specified\n"
    history = _segment(tmp_path, content, "00000002.history")
    assert cli("wal-push", str(history), env=env).returncode == 0
    assert (
        not list(Path(repo, "wal", "00000002").glob("*.history.zst"))
        or b"no recovery" not in next(Path(repo, "wal", "00000002").glob("*.history.zst")).read_bytes()
    )
    fetched = cli("wal-fetch", "00000002.history", str(tmp_path / "h"), env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "h").read_bytes() == content


def test_wal_fetch_with_prefetch_spools_the_next_segments_and_serves_them_from_the_spool(
    repo: str, tmp_path: Path
) -> None:
    names = [f"0000000100000000000000{n:02X}" for n in (1, 2, 3)]
    for name in names:
        assert cli("wal-push", "--repo", repo, str(_segment(tmp_path, name.encode() * 100, name))).returncode == 0
    pg_wal = tmp_path / "pg_wal"
    pg_wal.mkdir()
    env = dict(os.environ, BACKSTREAM_WAL_PREFETCH="2")
    assert cli("wal-fetch", "--repo", repo, names[0], str(pg_wal / "RECOVERYXLOG"), env=env).returncode == 0
    spool = pg_wal / "backstream-spool"
    deadline = time.monotonic() + 20
    while not all((spool / name).exists() for name in names[1:]):
        assert time.monotonic() < deadline, f"prefetch did not spool {names[1:]}: {list(spool.iterdir())}"
        time.sleep(0.05)
    for stored in Path(repo, "wal", "00000001").glob(names[1] + ".*"):
        stored.unlink()  # from now on only the spool has it
    fetched = cli("wal-fetch", "--repo", repo, names[1], str(pg_wal / "RECOVERYXLOG"), env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert (pg_wal / "RECOVERYXLOG").read_bytes() == names[1].encode() * 100


def test_encrypted_physical_backup_restores_to_immediate_consistency(scenario: Scenario, restored_dir: Path) -> None:
    env = dict(os.environ, BACKSTREAM_PASSPHRASE="physical pass")
    made = cli(
        "backup", scenario.server.url(), "--physical", "--repo", scenario.repo, "--encrypt", "passphrase", env=env
    )
    assert made.returncode == 0, made.stderr
    backup_id = made.stdout.strip()
    stored = next(Path(scenario.repo, "backups", backup_id, "data").iterdir())
    assert b"backup_label" not in stored.read_bytes()
    port = _free_port()
    result = cli(
        "restore", backup_id, "--repo", scenario.repo, "--to-dir", str(restored_dir),
        "--target", "immediate", "--start", "--port", str(port), env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _batches(scenario.server, port) == [1, 2, 3]


def test_prune_deletes_wal_older_than_the_oldest_kept_base_backup_and_keeps_the_rest(
    scenario: Scenario, tmp_path: Path
) -> None:
    repo = str(tmp_path / "pruned")
    shutil.copytree(scenario.repo, repo, symlinks=True)
    old = _segment(tmp_path, b"o" * 4096, name="000000010000000000000000")  # before the base backup's start
    assert cli("wal-push", "--repo", repo, str(old)).returncode == 0
    start_wal = json.loads(Path(repo, "backups", scenario.backup_id, "manifest.json").read_text())["source"][
        "metadata"
    ]["start_wal"]

    dry = json.loads(ok("prune", "--repo", repo, "--keep-last", "1000", "--dry-run", "--json"))
    wal = {item["name"]: item for item in dry["archive"] if item["kind"] == "wal"}
    assert not wal["000000010000000000000000"]["keep"]
    assert all(item["keep"] for name, item in wal.items() if name >= start_wal)

    ok("prune", "--repo", repo, "--keep-last", "1000")  # every backup kept: the scenario's is the oldest
    assert not Path(repo, "wal", "00000001", "000000010000000000000000.json").exists()
    for segment in [start_wal, *scenario.segments_after_backup]:
        assert Path(repo, "wal", "00000001", segment + ".json").exists(), f"{segment} was pruned"


def test_pg_basebackup_killed_midway_fails_the_physical_backup(scenario: Scenario) -> None:
    source = Plugins.load().sources().get("postgresql-physical").open(scenario.server.url(), {})

    async def main() -> None:
        async with source.dump(JobContext("killed")) as chunks:
            await anext(chunks)
            for pid in child_processes("pg_basebackup"):
                os.kill(pid, signal.SIGKILL)
            async for _ in chunks:
                pass

    with pytest.raises(SourceError, match=r"pg_basebackup failed \(killed by signal 9\)"):
        anyio.run(main)


def test_a_physical_backup_abandoned_by_its_reader_fails_and_stops_pg_basebackup(scenario: Scenario) -> None:
    source = Plugins.load().sources().get("postgresql-physical").open(scenario.server.url(), {})

    async def main() -> None:
        async with source.dump(JobContext("abandoned")) as chunks:
            await anext(chunks)

    with pytest.raises(SourceError, match="abandoned before pg_basebackup finished"):
        anyio.run(main)
    assert child_processes("pg_basebackup") == []


def test_a_restored_server_that_dies_at_start_up_is_a_failure_not_a_promotion(
    scenario: Scenario, restored_dir: Path
) -> None:
    """A restore_command the server cannot run is FATAL at start-up. The base backup's own
    pg_control already says "in production": that must not be taken for a promotion."""
    env = dict(os.environ, BACKSTREAM_EXECUTABLE="/nonexistent/backstream")
    result = cli(
        "restore", scenario.backup_id, "--repo", scenario.repo, "--to-dir", str(restored_dir),
        "--target", "immediate", "--start", "--port", str(_free_port()), env=env,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    assert "stopped before reaching" in result.stderr or "recovery stopped before" in result.stderr
    assert "promoted" not in result.stdout


def test_a_restore_given_a_relative_repository_writes_an_absolute_one_for_wal_fetch(
    scenario: Scenario, restored_dir: Path
) -> None:
    result = subprocess.run(
        [BACKSTREAM, "restore", scenario.backup_id, "--repo", Path(scenario.repo).name, "--to-dir", str(restored_dir)],
        cwd=Path(scenario.repo).parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f'repo = "{scenario.repo}"' in (restored_dir / "backstream-wal.toml").read_text()
