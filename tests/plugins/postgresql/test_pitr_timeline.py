"""verify-pitr after a timeline switch: a base backup on timeline 1, a restored copy promoted to
timeline 2 that archives into the same repository; the backup stays recoverable to now through the
timeline history, and a lost history file is named.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures.pitr import cli, enable_archiving, ok, postgres_owned_dir
from fixtures.postgres import PostgresServer, _free_port, as_postgres, start_postgres

PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"


@dataclass(frozen=True)
class Promoted:
    server: PostgresServer  # the original, still on timeline 1
    url: str  # the restored copy, promoted to timeline 2
    repo: str
    backup_id: str


@pytest.fixture(scope="module")
def promoted(server_side_backstream: str) -> Iterator[Promoted]:
    base = postgres_owned_dir("backstream-timeline-")
    data = base / "restored"
    try:
        with start_postgres() as server:
            repo = str(base / "repo")
            enable_archiving(server, repo)
            backup_id = ok("backup", server.url(), "--physical", "--repo", repo).strip()
            port = _free_port()
            ok(
                "restore", backup_id, "--repo", repo, "--to-dir", str(data),
                "--target", "immediate", "--start", "--port", str(port),
            )  # fmt: skip
            url = f"postgresql://{server.user}:{server.password}@127.0.0.1:{port}/postgres"
            ok("pitr", "setup", url, "--repo", repo, "--apply")  # the promoted copy archives too
            restart = [PG_CTL, "-D", str(data), "-l", str(data / "restart.log"), "-w", "-t", "60", "restart"]
            subprocess.run(as_postgres(restart), check=True, capture_output=True)
            # Its history file was made while it did not archive yet: push it as an operator would.
            ok("wal-push", "--repo", repo, str(data / "pg_wal" / "00000002.history"))
            if os.geteuid() == 0:
                subprocess.run(["chown", "-R", "postgres:postgres", repo], check=True)
            yield Promoted(server, url, repo, backup_id)
    finally:
        if (data / "postmaster.pid").exists():
            stop = [PG_CTL, "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(as_postgres(stop), capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)  # both servers down: no archiver makes the repository again


def verify(promoted: Promoted) -> tuple[int, dict[str, object], str]:
    result = cli("verify-pitr", promoted.url, "--repo", promoted.repo, "--json")
    return result.returncode, json.loads(result.stdout) if result.stdout else {}, result.stderr


def test_a_backup_on_the_old_timeline_is_recoverable_to_now_through_the_history(promoted: Promoted) -> None:
    code, window, stderr = verify(promoted)
    assert str(window["segment"]).startswith("00000002")
    assert (code, window["recoverable_from_backup"], window["missing_wal"]) == (0, promoted.backup_id, None), stderr
    assert window["unchecked_backups"] == []


def test_a_lost_history_file_cuts_the_old_timelines_backups_off(promoted: Promoted) -> None:
    for path in Path(promoted.repo, "wal", "00000002").glob("00000002.history*"):
        path.unlink()
    code, window, stderr = verify(promoted)
    assert code == 1
    assert window["missing_wal"] == "00000002.history" and window["broken_backups"] == [promoted.backup_id]
    assert "WAL segment 00000002.history is missing" in stderr
