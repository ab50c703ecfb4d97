"""backstream as a DBA on Debian 12 runs it: as the ``postgres`` OS user, on Debian's own
``/usr/bin/python3`` (3.11.2), never as root.

Physical backup, WAL archiving and a point-in-time restore that starts the server; and the errors
a non-root user meets (folders it may not search) in one line each, without a traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fixtures.pitr import enable_archiving, postgres_owned_dir
from fixtures.postgres import PostgresServer, _free_port, as_postgres, start_postgres
from fixtures.sqlite_db import make_awkward_db, table_checksums


def run_as_postgres(backstream: str, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKSTREAM_")}
    env.update(HOME="/var/lib/postgresql", BACKSTREAM_EXECUTABLE=backstream)
    return subprocess.run(
        as_postgres([backstream, *argv]), capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exactly one line on stderr, and no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@dataclass(frozen=True)
class Archived:
    server: PostgresServer
    repo: str
    target_time: str  # after the first batch of rows committed, before the second
    base: Path


@pytest.fixture(scope="module")
def archived(server_side_backstream: str) -> Iterator[Archived]:
    """A cluster archiving into a repository, a physical backup taken as postgres, then two
    batches of rows with a recorded time between them."""
    base = postgres_owned_dir("backstream-as-postgres-")
    repo = str(base / "repo")
    try:
        with start_postgres() as server:
            enable_archiving(server, repo)
            made = run_as_postgres(server_side_backstream, "backup", server.url(), "--physical", "--repo", repo)
            assert made.returncode == 0, made.stderr
            with server.connect() as conn:
                conn.execute("CREATE TABLE t (batch int)")
                conn.execute("INSERT INTO t SELECT 1 FROM generate_series(1, 50)")
                time.sleep(1.1)
                row = conn.execute(
                    "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
                ).fetchone()
                time.sleep(1.1)
                conn.execute("INSERT INTO t SELECT 2 FROM generate_series(1, 50)")
                segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
            assert row is not None and segment is not None
            deadline = time.monotonic() + 60
            while not Path(repo, "wal", "00000001", segment[0] + ".json").exists():
                assert time.monotonic() < deadline, "the segment was not archived within 60 s"
                time.sleep(0.2)
            yield Archived(server, repo, row[0] + "+00", base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_postgres_user_runs_debians_python() -> None:
    version = subprocess.run(
        as_postgres(["/usr/bin/python3", "-c", "import sys; print(sys.version_info[:2] >= (3, 11))"]),
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == "True"


def test_restore_to_a_time_as_postgres_on_debians_python_has_exactly_that_data(
    archived: Archived, server_side_backstream: str
) -> None:
    data, port = archived.base / "restored", _free_port()
    result = run_as_postgres(
        server_side_backstream, "restore", "latest", "--repo", archived.repo, "--to-dir", str(data),
        "--target-time", archived.target_time, "--start", "--port", str(port),
    )  # fmt: skip
    try:
        assert result.returncode == 0, result.stderr
        assert "promoted" in result.stdout
        with psycopg.connect(
            host="127.0.0.1", port=port, user=archived.server.user, password=archived.server.password,
            dbname="postgres", autocommit=True,
        ) as conn:  # fmt: skip
            assert conn.execute("SELECT batch, count(*) FROM t GROUP BY batch").fetchall() == [(1, 50)]
    finally:
        subprocess.run(
            as_postgres(["/usr/lib/postgresql/15/bin/pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            check=False,
        )


def test_restore_to_dir_under_a_folder_postgres_cannot_search_fails_in_one_line(
    archived: Archived, server_side_backstream: str, tmp_path: Path
) -> None:
    denied = tmp_path / "root-only"
    denied.mkdir(mode=0o700)
    result = run_as_postgres(server_side_backstream, "restore", "latest", "--repo", archived.repo,
                             "--to-dir", str(denied / "data"))  # fmt: skip
    assert one_line_error(result) == f"backstream: error: permission denied: {denied / 'data'}"
    assert list(denied.iterdir()) == []


# --- SQLite and files as a user without access --------------------------------------------------------


@pytest.fixture
def sqlite_repo(server_side_backstream: str) -> Iterator[tuple[str, Path]]:
    """A repository the postgres user can write, holding one backup of a SQLite database."""
    base = postgres_owned_dir("backstream-nonroot-")
    os.chmod(base, 0o755)
    try:
        source = make_awkward_db(base / "source.db", blob_mib=1)
        os.chown(source, os.stat(base).st_uid, os.stat(base).st_gid)
        repo = str(base / "repo")
        assert run_as_postgres(server_side_backstream, "init", "--repo", repo).returncode == 0
        made = run_as_postgres(server_side_backstream, "backup", f"sqlite://{source}", "--repo", repo)
        assert made.returncode == 0, made.stderr
        yield repo, source
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_restore_into_a_folder_the_user_cannot_search_says_permission_denied(
    sqlite_repo: tuple[str, Path], server_side_backstream: str, tmp_path: Path
) -> None:
    repo, _ = sqlite_repo
    target = tmp_path / "x.db"  # pytest's tmp_path is root's, mode 0700
    result = run_as_postgres(server_side_backstream, "restore", "latest", "--repo", repo, "--to", f"sqlite://{target}")
    assert one_line_error(result) == f"backstream: error: cannot restore to {target}: permission denied"


def test_a_restore_as_the_user_still_works(sqlite_repo: tuple[str, Path], server_side_backstream: str) -> None:
    repo, source = sqlite_repo
    target = source.parent / "copy.db"
    result = run_as_postgres(server_side_backstream, "restore", "latest", "--repo", repo, "--to", f"sqlite://{target}")
    assert result.returncode == 0, result.stderr
    assert table_checksums(target) == table_checksums(source)


def test_backup_of_a_database_the_user_cannot_reach_says_denied_not_missing(
    sqlite_repo: tuple[str, Path], server_side_backstream: str, tmp_path: Path
) -> None:
    repo, _ = sqlite_repo
    hidden = make_awkward_db(tmp_path / "x.db", blob_mib=1)
    result = run_as_postgres(server_side_backstream, "backup", f"sqlite://{hidden}", "--repo", repo)
    assert one_line_error(result) == f"backstream: error: cannot read sqlite database {hidden}: permission denied"
    missing = run_as_postgres(server_side_backstream, "backup", "sqlite:///var/lib/postgresql/none.db", "--repo", repo)
    assert one_line_error(missing) == "backstream: error: sqlite database /var/lib/postgresql/none.db does not exist"


def test_decrypt_of_a_file_the_user_cannot_reach_says_denied_not_missing(
    server_side_backstream: str, tmp_path: Path
) -> None:
    hidden = tmp_path / "f"
    hidden.write_bytes(b"whatever")
    result = run_as_postgres(server_side_backstream, "decrypt", "-i", str(hidden), "-o", "/dev/null")
    assert one_line_error(result) == f"backstream: error: cannot read {hidden}: permission denied"
    gone = run_as_postgres(server_side_backstream, "decrypt", "-i", "/var/lib/postgresql/gone", "-o", "/dev/null")
    assert one_line_error(gone) == "backstream: error: cannot read /var/lib/postgresql/gone: no such file"


def test_backstream_debug_shows_the_traceback_behind_the_line(
    archived: Archived, server_side_backstream: str, tmp_path: Path
) -> None:
    denied = tmp_path / "root-only"
    denied.mkdir(mode=0o700)
    env_argv = ["env", "BACKSTREAM_DEBUG=1", server_side_backstream]
    result = subprocess.run(
        as_postgres([*env_argv, "restore", "latest", "--repo", archived.repo, "--to-dir", str(denied / "data")]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "PermissionError" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"backstream: error: permission denied: {denied / 'data'}"
