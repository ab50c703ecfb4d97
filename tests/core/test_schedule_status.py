"""``backstream status``: history and repository per job, and ``--check`` in Nagios plugin format."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from backstream.repository import utc_now
from backstream.schedule import History, RunRecord
from fixtures.mariadb import MariaDBServer
from fixtures.schedule_jobs import make_db, new_repo

CLI = [sys.executable, "-m", "backstream.cli.main"]


def backstream(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False)


def config_file(tmp_path: Path, source: str, repo: Path, extra: str = "", name: str = "schedule.toml") -> Path:
    path = tmp_path / name
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[jobs.app]\nsource = "{source}"\nrepository = "{repo}"\n'
        f'schedule = "@daily"\n{extra}\n'
    )
    return path


@pytest.fixture
def backed_up(tmp_path: Path) -> tuple[str, Path]:
    """A repository with one backup of a SQLite database, made a little over a second ago."""
    db = make_db(tmp_path / "app.db")
    repo = new_repo(tmp_path / "repo")
    source = f"sqlite://{db}"
    assert backstream("backup", source, "--repo", str(repo)).returncode == 0
    time.sleep(1.2)
    return source, repo


def check(config: Path) -> tuple[int, str]:
    result = backstream("status", "--config", str(config), "--check")
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    return result.returncode, lines[0]


def test_check_is_critical_when_the_newest_good_backup_is_older_than_max_age(
    tmp_path: Path, backed_up: tuple[str, Path]
) -> None:
    code, line = check(config_file(tmp_path, *backed_up, 'max_age = "1s"'))
    assert code == 2
    assert re.fullmatch(
        r"BACKSTREAM CRITICAL - app: newest good backup \ds old \(max_age 1s\) \| 'app_age'=\ds;0;1;0", line
    ), line


def test_check_warns_past_warn_age_and_is_ok_before(tmp_path: Path, backed_up: tuple[str, Path]) -> None:
    code, line = check(config_file(tmp_path, *backed_up, 'max_age = "1h"\nwarn_age = "1s"'))
    assert code == 1 and line.startswith("BACKSTREAM WARNING - app: newest good backup 1s old (warn at 1s)")
    code, line = check(config_file(tmp_path, *backed_up, 'max_age = "1h"'))
    assert code == 0 and re.fullmatch(r"BACKSTREAM OK - 1 of 1 jobs fresh \| 'app_age'=\ds;2880;3600;0", line)


def test_check_is_critical_without_a_backup_of_the_jobs_source(tmp_path: Path, backed_up: tuple[str, Path]) -> None:
    _, repo = backed_up  # holds a backup, but of another database
    other = make_db(tmp_path / "other.db")
    code, line = check(config_file(tmp_path, f"sqlite://{other}", repo, 'max_age = "1h"'))
    assert code == 2 and line == "BACKSTREAM CRITICAL - app: no newest good backup | 'app_age'=U;2880;3600;0"


def test_check_is_critical_when_the_repository_cannot_be_read(tmp_path: Path) -> None:
    code, line = check(config_file(tmp_path, "sqlite:///x.db", tmp_path / "nowhere", 'max_age = "1h"'))
    assert code == 2 and line.startswith("BACKSTREAM CRITICAL - app: repository unreadable: ")


def test_check_is_unknown_on_a_bad_schedule_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[jobs.a]\nschedule = "@never"\n')
    code, line = check(bad)
    assert code == 3 and line.startswith(f"BACKSTREAM UNKNOWN - {bad}: [jobs.a] schedule:")


def test_status_shows_last_success_last_failure_next_run_and_the_newest_backup(
    tmp_path: Path, backed_up: tuple[str, Path]
) -> None:
    config = config_file(tmp_path, *backed_up, 'max_age = "1h"')
    now = utc_now()
    history = History(tmp_path / "state")
    history.append(RunRecord("app", "backup", "r1", 1, "schedule", now, now, now, "success", True, "b-1", 99))
    later = now + timedelta(seconds=1)
    history.append(
        RunRecord("app", "backup", "r2", 1, "schedule", later, later, later, "failed", True, error="disk full")
    )
    shown = json.loads(backstream("status", "--config", str(config), "--json").stdout)
    (job,) = shown["jobs"]
    assert job["last_success"]["backup_id"] == "b-1" and job["last_success"]["bytes"] == 99
    assert job["last_failure"]["error"] == "disk full" and job["last_status"] == "failed"
    assert job["next_run"].endswith("T00:00:00.000000Z")
    assert job["newest_backup"]["backup_id"] and 1 <= job["age_seconds"] < 30
    assert job["max_age_seconds"] == 3600 and job["archive_lag_seconds"] == {}
    text = backstream("status", "--config", str(config)).stdout
    assert "last failure" in text and "disk full" in text and "newest good" in text and "next run" in text


def test_status_reports_the_binlog_archive_lag(tmp_path: Path, mariadb_server: MariaDBServer) -> None:
    repo = new_repo(tmp_path / "repo")
    db = mariadb_server.create_database(mariadb_server.unique_name("status"))
    mariadb_server.execute("CREATE TABLE t (x INT)", database=db)
    assert backstream("backup", mariadb_server.url(db), "--repo", str(repo)).returncode == 0
    mariadb_server.execute("INSERT INTO t VALUES (1)", database=db)
    mariadb_server.execute("FLUSH BINARY LOGS")
    archived = backstream("binlog-archive", mariadb_server.url(), "--repo", str(repo))
    assert archived.returncode == 0, archived.stderr
    config = config_file(tmp_path, mariadb_server.url(db), repo)
    (job,) = json.loads(backstream("status", "--config", str(config), "--json").stdout)["jobs"]
    (lag,) = job["archive_lag_seconds"].values()
    assert 0 <= lag < 120
    assert " lag " in backstream("status", "--config", str(config)).stdout
