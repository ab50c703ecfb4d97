"""Restore drills of PostgreSQL physical base backups (``backstream verify`` of a ``--physical``
backup): restored into a scratch directory, checked against backup_manifest, recovered to
consistency on a throwaway server, every database inspected and pg_amcheck'd; then nothing is left.

Failures: a stored object changed (restore), a file changed inside the backup (manifest), a WAL
segment gone from the archive (recovery), a page corrupted at the source (database, pg_amcheck),
SIGTERM midway. One archiving server for the module; a second one with a tablespace.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures.pitr import BACKSTREAM, cli, enable_archiving, ok, postgres_owned_dir
from fixtures.postgres import PostgresServer, as_postgres, start_postgres

pytestmark = pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="the leftover checks scan /proc")

SHOP = """
CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL);
CREATE INDEX customer_name ON customer (name);
CREATE TABLE orders (id serial PRIMARY KEY, customer int REFERENCES customer (id), note text);
INSERT INTO customer SELECT i, 'name ' || i FROM generate_series(1, 500) i;
INSERT INTO orders (customer, note) SELECT 1 + i % 500, 'n' || i FROM generate_series(1, 700) i;
"""
SHOP_ROWS = 1200


@dataclass(frozen=True)
class Archived:
    server: PostgresServer
    base: Path  # postgres-owned; holds the repository
    repo: str
    backup_id: str


@pytest.fixture(scope="module")
def archived(server_side_backstream: str) -> Iterator[Archived]:
    """A server archiving into a repository, with database ``shop`` and a physical backup (WAL from the archive)."""
    base = postgres_owned_dir("backstream-drill-repo-")
    try:
        with start_postgres() as server:
            repo = str(base / "repo")
            enable_archiving(server, repo)
            server.create_database("shop")
            with server.connect("shop") as conn:
                conn.execute(SHOP)
            backup_id = ok("backup", server.url(), "--physical", "--repo", repo).strip()
            yield Archived(server, base, repo, backup_id)
    finally:
        shutil.rmtree(base, ignore_errors=True)


SOCKETS = "/tmp/backstream-sock-*"
_sockets_before: dict[Path, set[Path]] = {}


@pytest.fixture
def parent() -> Iterator[Path]:
    """The --scratch directory (postgres-owned): the drill makes its scratch directory in it."""
    path = postgres_owned_dir("backstream-drill-parent-")
    _sockets_before[path] = set(Path("/").glob(SOCKETS.lstrip("/")))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def processes_in(directory: Path) -> list[int]:
    """PIDs of processes whose working directory is in ``directory`` (a server's are in its data dir)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd.startswith(str(directory) + "/"):
                found.append(int(entry))
    return found


def assert_nothing_left(parent: Path) -> None:
    assert list(parent.iterdir()) == [], "the scratch directory was not removed"
    assert set(Path("/").glob(SOCKETS.lstrip("/"))) <= _sockets_before[parent], "a socket directory was left"
    assert processes_in(parent) == [], "a process of the drill's server is still running"


def copy_repo(archived: Archived, name: str) -> str:
    """A copy of the repository that a test may damage (postgres-owned: its server reads the WAL)."""
    copy = archived.base / name
    shutil.copytree(archived.repo, copy)
    subprocess.run(["chown", "-R", "--reference", str(archived.repo), str(copy)], check=True)
    return str(copy)


def drill_records(repo: str, backup_id: str) -> list[dict[str, object]]:
    drills = sorted(Path(repo, "backups", backup_id, "drills").glob("*.json"))
    return [json.loads(path.read_text()) for path in drills]


def lines(report: str) -> dict[str, str]:
    """The report table as check name -> ``STATUS  detail``."""
    table: dict[str, str] = {}
    for line in report.splitlines()[2:-1]:
        name, _, rest = line.partition("  ")
        table[name.strip()] = rest.strip()
    return table


def test_verify_of_a_physical_backup_passes_reports_its_checks_and_leaves_nothing(
    archived: Archived, parent: Path
) -> None:
    result = cli("verify", archived.backup_id, "--repo", archived.repo, "--scratch", str(parent), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout, result.stderr)
    checks = lines(result.stdout)
    for name in ("restore", "manifest", "recovery", "connect", "database shop", "database postgres", "pg_amcheck"):
        assert checks.get(name, "").startswith("PASS"), f"{name}: {checks.get(name)}\n{result.stdout}"
    assert "backup_manifest" in checks["manifest"]
    assert f"{SHOP_ROWS} rows read" in checks["database shop"]
    assert "no corruption" in checks["pg_amcheck"]
    assert result.stdout.splitlines()[-1].startswith("PASS:")
    assert_nothing_left(parent)
    (record,) = drill_records(archived.repo, archived.backup_id)[-1:]
    assert record["status"] == "pass" and record["level"] == "standard"
    assert record["databases"]["shop"] == {"tables": 2, "rows": SHOP_ROWS}  # type: ignore[index]
    assert "pass" in ok("show", archived.backup_id, "--repo", archived.repo)
    assert not Path(archived.repo, "wal", "00000002").exists(), "the promoted drill server archived WAL"


def test_the_comprehensive_level_dumps_every_table_and_runs_pg_amcheck_heapallindexed(
    archived: Archived, parent: Path
) -> None:
    result = cli(
        "verify", archived.backup_id, "--repo", archived.repo, "--scratch", str(parent),
        "--level", "comprehensive", "--json", "--no-record", timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "pass" and report["failed"] == 0
    checks = {check["name"]: check for check in report["checks"]}
    assert "2 content checksums" in checks["database shop"]["detail"]
    assert "--heapallindexed" in checks["pg_amcheck"]["detail"]
    assert report["databases"]["shop"]["rows"] == SHOP_ROWS
    assert_nothing_left(parent)


def test_a_changed_stored_object_fails_the_restore_check_with_exit_1(archived: Archived, parent: Path) -> None:
    repo = copy_repo(archived, "tampered-object")
    manifest = json.loads(Path(repo, "backups", archived.backup_id, "manifest.json").read_text())
    stored = Path(repo, manifest["objects"][0]["path"])
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x40
    stored.write_bytes(bytes(data))
    result = cli("verify", archived.backup_id, "--repo", repo, "--scratch", str(parent), timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    print(result.stdout, result.stderr)
    checks = lines(result.stdout)
    assert checks["restore"].startswith("FAIL"), result.stdout
    assert "sha256" in checks["restore"] or "corrupt" in checks["restore"]  # whichever notices first
    assert "Traceback" not in result.stderr
    assert_nothing_left(parent)
    assert drill_records(repo, archived.backup_id)[-1]["status"] == "fail"


def test_a_file_changed_inside_the_base_backup_fails_the_manifest_check(archived: Archived, parent: Path) -> None:
    """The repository's hashes made to match (as if the bytes were bad before they were stored):
    pg_verifybackup still finds the file whose checksum differs from backup_manifest's."""
    backup_id = ok("backup", archived.server.url(), "--physical", "--compress", "none", "--repo", archived.repo).strip()
    with archived.server.connect("shop") as conn:
        row = conn.execute("SELECT pg_relation_filepath('customer')").fetchone()
    assert row is not None
    relation = row[0]
    repo = copy_repo(archived, "changed-file")
    manifest_path = Path(repo, "backups", backup_id, "manifest.json")
    manifest = json.loads(manifest_path.read_text())
    (record,) = manifest["objects"]
    stored = Path(repo, record["path"])
    with tarfile.open(stored) as archive:
        offset = archive.getmember(relation).offset_data
    with stored.open("r+b") as tar:
        tar.seek(offset + 4096)  # inside the first page's tuples: the page header stays valid
        tar.write(b"\xff" * 16)
    record["stored_sha256"] = hashlib.sha256(stored.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    result = cli("verify", backup_id, "--repo", repo, "--scratch", str(parent), timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    print(result.stdout, result.stderr)
    checks = lines(result.stdout)
    assert checks["restore"].startswith("PASS"), result.stdout
    assert checks["manifest"].startswith("FAIL"), result.stdout
    assert f'checksum mismatch for file "{relation}"' in checks["manifest"]
    assert_nothing_left(parent)


def test_a_wal_segment_missing_from_the_archive_fails_the_recovery_check_naming_it(
    archived: Archived, parent: Path
) -> None:
    repo = copy_repo(archived, "missing-wal")
    shown = json.loads(Path(repo, "backups", archived.backup_id, "manifest.json").read_text())
    segment = shown["source"]["metadata"]["stop_wal"]
    for path in Path(repo, "wal", "00000001").glob(segment + "*"):
        path.unlink()
    result = cli("verify", archived.backup_id, "--repo", repo, "--scratch", str(parent), timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    print(result.stdout, result.stderr)
    checks = lines(result.stdout)
    assert checks["manifest"].startswith("PASS")
    assert checks["recovery"].startswith("FAIL"), result.stdout
    assert f"WAL segment {segment} is missing from the archive" in checks["recovery"]
    assert "database shop" not in checks
    assert_nothing_left(parent)


def _pg_ctl(server: PostgresServer, *argv: str) -> None:
    log = str(Path(server.data_dir).parent / "server.log")
    done = subprocess.run(
        as_postgres([f"{server.bindir}/pg_ctl", "-D", server.data_dir, "-l", log, "-w", "-t", "60", *argv]),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_a_page_corrupted_at_the_source_is_found_by_the_database_checks_and_pg_amcheck(
    archived: Archived, parent: Path
) -> None:
    """The backup is faithful to a corrupt cluster, so backup_manifest agrees: the checks of the
    running server are what find it."""
    server = archived.server
    server.create_database("broken")
    try:
        with server.connect("broken") as conn:
            conn.execute("CREATE TABLE t (n int); INSERT INTO t SELECT generate_series(1, 100); CHECKPOINT")
            row = conn.execute("SELECT pg_relation_filepath('t')").fetchone()
        assert row is not None
        _pg_ctl(server, "stop", "-m", "fast")
        with Path(server.data_dir, row[0]).open("r+b") as heap:
            heap.seek(12)  # pd_lower, pd_upper: a page header no server accepts
            heap.write(b"\xff\xff\x01\x00")
        _pg_ctl(server, "start")
        backup_id = ok("backup", server.url(), "--physical", "--repo", archived.repo).strip()
    finally:
        server.drop_database("broken")
    result = cli("verify", backup_id, "--repo", archived.repo, "--scratch", str(parent), timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    print(result.stdout, result.stderr)
    checks = lines(result.stdout)
    assert checks["manifest"].startswith("PASS") and checks["recovery"].startswith("PASS"), result.stdout
    assert checks["database broken"].startswith("FAIL") and "invalid page" in checks["database broken"]
    assert checks["database shop"].startswith("PASS")
    assert checks["pg_amcheck"].startswith("FAIL") and '"broken.public.t"' in checks["pg_amcheck"], result.stdout
    assert_nothing_left(parent)


def test_sigterm_during_recovery_stops_the_server_and_removes_the_scratch_directory(
    archived: Archived, parent: Path, server_side_backstream: str
) -> None:
    """restore_command made slow, so the drill is caught with its server in recovery."""
    folder = postgres_owned_dir("backstream-drill-slow-")
    try:
        slow = folder / "backstream"
        slow.write_text(f'#!/bin/sh\nsleep 60\nexec {server_side_backstream} "$@"\n')
        slow.chmod(0o755)
        os.chmod(folder, 0o755)
        env = {**os.environ, "BACKSTREAM_EXECUTABLE": str(slow)}
        argv = [BACKSTREAM, "verify", archived.backup_id, "--repo", archived.repo, "--scratch", str(parent)]
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not list(parent.glob("*/data/postmaster.pid")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the drill's server did not start"
            time.sleep(0.05)
        time.sleep(0.5)  # recovery has begun: the startup process runs the slow restore_command
        assert processes_in(parent), "no server process runs in the scratch directory"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert process.returncode == 128 + signal.SIGTERM, out + err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    assert list(parent.iterdir()) == []
    assert set(Path("/").glob(SOCKETS.lstrip("/"))) <= _sockets_before[parent]
    deadline = time.monotonic() + 10
    while processes_in(parent):
        assert time.monotonic() < deadline, f"left running: {processes_in(parent)}"
        time.sleep(0.1)


def test_without_scratch_a_temporary_directory_postgres_cannot_enter_is_refused_in_one_line(
    archived: Archived, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("as root only: the server then runs as postgres")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    result = cli("verify", archived.backup_id, "--repo", archived.repo, env={**os.environ, "TMPDIR": str(private)})
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "cannot enter" in result.stderr, result.stderr
    assert "--scratch" in result.stderr
    assert list(private.iterdir()) == []


@pytest.fixture
def spaced(server_side_backstream: str) -> Iterator[tuple[str, str]]:
    """A cluster with a tablespace holding table ``spaced`` (500 rows) and a ``-X fetch`` backup of it."""
    base = postgres_owned_dir("backstream-drill-ts-")
    try:
        with start_postgres() as server:
            location = base / "ts1"
            location.mkdir(mode=0o700)
            if os.geteuid() == 0:
                shutil.chown(location, "postgres", "postgres")
            with server.connect() as conn:
                conn.execute(f"CREATE TABLESPACE ts1 LOCATION '{location}'")
                conn.execute("CREATE TABLE spaced (n int PRIMARY KEY) TABLESPACE ts1")
                conn.execute("INSERT INTO spaced SELECT generate_series(1, 500)")
            repo = str(base / "repo")
            ok("init", "--repo", repo)
            backup_id = ok("backup", server.url(), "--physical", "-o", "wal=fetch", "--repo", repo).strip()
            subprocess.run(["chown", "-R", "--reference", str(base), repo], check=True)
            yield repo, backup_id
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_cluster_with_a_tablespace_and_its_wal_in_the_backup_verifies(spaced: tuple[str, str], parent: Path) -> None:
    repo, backup_id = spaced
    result = cli("verify", backup_id, "--repo", repo, "--scratch", str(parent), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    print(result.stdout, result.stderr)
    checks = lines(result.stdout)
    assert "and the WAL it includes" in checks["manifest"], result.stdout
    assert "1 table, 500 rows read" in checks["database postgres"]
    assert checks["pg_amcheck"].startswith("PASS")
    assert_nothing_left(parent)
