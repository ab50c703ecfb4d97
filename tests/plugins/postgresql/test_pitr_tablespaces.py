"""Physical base backups of a cluster with a tablespace: stored as base.tar, <oid>.tar and
backup_manifest; restored with the tablespace moved by --tablespace-map, or refused with a clear
message (and nothing left behind) when its original location is still in use.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import psycopg
import pytest
from backstream.jobs import backup
from backstream_plugins.postgresql.tablespace_map import format_tablespace_map, parse_tablespace_map
from fixtures.pitr import cli, ok, postgres_owned_dir
from fixtures.postgres import PostgresServer, _free_port, start_postgres
from fixtures.processes import child_processes
from hypothesis import given
from hypothesis import strategies as st

SPACED_ROWS = 1000
PLAIN_ROWS = 10


def test_tablespace_map_lines_are_read_with_postgresqls_escapes() -> None:
    """As PostgreSQL 15 writes them: a backslash before each backslash, newline and carriage return."""
    data = b"16384 /srv/ts one\n16385 /srv/a\\\\b\\\nc\r\n"
    assert parse_tablespace_map(data) == [("16384", b"/srv/ts one"), ("16385", b"/srv/a\\b\nc")]


@given(st.lists(st.tuples(st.integers(1, 2**32 - 1).map(str), st.binary(min_size=1).filter(lambda b: b"\0" not in b))))
def test_any_tablespace_map_survives_writing_and_reading_back(entries: list[tuple[str, bytes]]) -> None:
    assert parse_tablespace_map(format_tablespace_map(entries)) == entries


@dataclass(frozen=True)
class Spaced:
    server: PostgresServer
    repo: str
    backup_id: str
    location: str  # the tablespace's original directory
    oid: str


@pytest.fixture(scope="module")
def spaced(server_side_backstream: str) -> Iterator[Spaced]:
    """A cluster with tablespace ``ts1`` holding table ``spaced``, and a physical backup of it (WAL fetched)."""
    base = postgres_owned_dir("backstream-ts-")
    try:
        with start_postgres() as server:
            location = base / "ts1"
            location.mkdir(mode=0o700)
            if os.geteuid() == 0:
                account = pwd.getpwnam("postgres")
                os.chown(location, account.pw_uid, account.pw_gid)
            with server.connect() as conn:
                conn.execute(f"CREATE TABLESPACE ts1 LOCATION '{location}'")
                conn.execute("CREATE TABLE spaced (n int NOT NULL) TABLESPACE ts1")
                conn.execute("INSERT INTO spaced SELECT g FROM generate_series(1, %s) g", (SPACED_ROWS,))
                conn.execute("CREATE TABLE plain (n int NOT NULL)")
                conn.execute("INSERT INTO plain SELECT g FROM generate_series(1, %s) g", (PLAIN_ROWS,))
                row = conn.execute("SELECT oid::text FROM pg_tablespace WHERE spcname = 'ts1'").fetchone()
            assert row is not None
            repo = str(base / "repo")
            ok("init", "--repo", repo)
            backup_id = ok("backup", server.url(), "--physical", "-o", "wal=fetch", "--repo", repo).strip()
            yield Spaced(server, repo, backup_id, str(location), row[0])
    finally:  # once the server is down (its tablespace lives in here)
        shutil.rmtree(base, ignore_errors=True)


def test_a_cluster_with_a_tablespace_is_stored_as_base_tablespace_and_manifest_objects(spaced: Spaced) -> None:
    shown = json.loads(ok("show", spaced.backup_id, "--repo", spaced.repo, "--json"))
    assert sorted(o["name"] for o in shown["objects"]) == sorted(["backup_manifest", "base.tar", f"{spaced.oid}.tar"])
    assert shown["source"]["metadata"]["tablespaces"] == [
        {"oid": spaced.oid, "name": "ts1", "location": spaced.location}
    ]
    assert shown["source"]["metadata"]["start_lsn"] and shown["source"]["metadata"]["stop_lsn"]
    assert shown["source"]["metadata"]["backup_from"] == "primary"


def test_restore_moves_the_tablespace_with_tablespace_map_and_the_server_reads_every_row(
    spaced: Spaced, restore_parent: Path
) -> None:
    data, port = restore_parent / "data", _free_port()
    moved = restore_parent / "ts1 moved\\here"  # a space and a backslash: tablespace_map escapes the latter
    result = cli(
        "restore", spaced.backup_id, "--repo", spaced.repo, "--to-dir", str(data),
        "--tablespace-map", f"{spaced.location}={moved}",
        "--target", "immediate", "--start", "--port", str(port),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert os.readlink(data / "pg_tblspc" / spaced.oid) == str(moved)
    with psycopg.connect(
        host="127.0.0.1", port=port, user=spaced.server.user, password=spaced.server.password, dbname="postgres"
    ) as conn:
        assert conn.execute("SELECT count(*), sum(n) FROM spaced").fetchone() == (
            SPACED_ROWS,
            SPACED_ROWS * (SPACED_ROWS + 1) // 2,
        )
        assert conn.execute("SELECT count(*) FROM plain").fetchone() == (PLAIN_ROWS,)
        location = conn.execute("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts1'")
        assert location.fetchone() == (str(moved),)


def test_restore_into_a_tablespace_location_still_in_use_is_refused_and_leaves_nothing(
    spaced: Spaced, restore_parent: Path
) -> None:
    data = restore_parent / "data"
    before = sorted(p.name for p in Path(spaced.location).iterdir())
    result = cli("restore", spaced.backup_id, "--repo", spaced.repo, "--to-dir", str(data), "--target", "immediate")
    assert result.returncode != 0
    assert f"tablespace directory {spaced.location} is not empty" in result.stderr
    assert "--tablespace-map" in result.stderr and "Traceback" not in result.stderr
    assert not data.exists()
    assert sorted(p.name for p in Path(spaced.location).iterdir()) == before


def test_a_tablespace_map_naming_no_tablespace_of_the_backup_is_refused(spaced: Spaced, restore_parent: Path) -> None:
    data = restore_parent / "data"
    result = cli(
        "restore", spaced.backup_id, "--repo", spaced.repo, "--to-dir", str(data),
        "--tablespace-map", f"/no/such/tablespace={restore_parent / 'x'}",
    )  # fmt: skip
    assert result.returncode != 0
    assert "/no/such/tablespace, which is no tablespace location" in result.stderr
    assert spaced.location in result.stderr
    assert not data.exists()


def test_a_tampered_tablespace_object_fails_the_restore_and_leaves_no_directory_behind(
    spaced: Spaced, restore_parent: Path
) -> None:
    """base.tar is already extracted when the tablespace's object turns out corrupt: the data
    directory and the tablespace directory the restore made are both removed."""
    repo = restore_parent / "repo"
    shutil.copytree(spaced.repo, repo)
    (stored,) = Path(repo, "backups", spaced.backup_id, "data").glob(f"{spaced.oid}.tar*")
    raw = bytearray(stored.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    stored.write_bytes(bytes(raw))
    data, moved = restore_parent / "data", restore_parent / "ts1-moved"
    result = cli(
        "restore", spaced.backup_id, "--repo", str(repo), "--to-dir", str(data),
        "--tablespace-map", f"{spaced.location}={moved}", "--target", "immediate",
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not data.exists()
    assert not moved.exists()


def test_tablespace_map_is_refused_for_a_logical_restore() -> None:
    target = "sqlite:///tmp/x.db"
    result = cli("restore", "latest", "--repo", "/nonexistent", "--to", target, "--tablespace-map", "/a=/b")
    assert result.returncode != 0
    assert "--tablespace-map applies to physical restores only" in result.stderr


def test_a_pg_basebackup_failing_while_spooling_fails_the_backup_and_removes_the_spool(
    spaced: Spaced, tmp_path: Path
) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    tool = fake / "pg_basebackup"
    tool.write_text(
        "#!/bin/sh\n"
        'while [ "$1" != "-D" ]; do shift; done\n'
        'mkdir -p "$2" && head -c 100000 /dev/zero > "$2/base.tar"\n'
        'echo "pg_basebackup: error: could not read COPY data: server closed the connection" >&2\n'
        "exit 1\n"
    )
    tool.chmod(0o755)
    spool = tmp_path / "spool"
    spool.mkdir()
    before = ok("list", "--repo", spaced.repo, "--json")
    result = cli(
        "backup", spaced.server.url(), "--physical", "-o", "wal=fetch", "-o", f"bindir={fake}",
        "-o", f"tmpdir={spool}", "--repo", spaced.repo,
    )  # fmt: skip
    assert result.returncode != 0
    assert "pg_basebackup failed (exit status 1): pg_basebackup: error: could not read COPY data" in result.stderr
    assert ok("list", "--repo", spaced.repo, "--json") == before
    assert list(spool.iterdir()) == []


def test_a_cluster_with_an_in_place_tablespace_is_refused_before_anything_is_copied(spaced: Spaced) -> None:
    """pg_basebackup leaves an in-place tablespace's files out (PostgreSQL 15): refused, not lost."""
    with spaced.server.connect() as conn:
        conn.execute("SET allow_in_place_tablespaces = on")
        conn.execute("CREATE TABLESPACE inplace LOCATION ''")
        try:
            before = ok("list", "--repo", spaced.repo, "--json")
            result = cli("backup", spaced.server.url(), "--physical", "-o", "wal=fetch", "--repo", spaced.repo)
            assert result.returncode != 0
            assert "inplace are in-place tablespaces" in result.stderr and "Traceback" not in result.stderr
            assert ok("list", "--repo", spaced.repo, "--json") == before
        finally:
            conn.execute("DROP TABLESPACE inplace")


def test_a_spool_directory_that_cannot_be_made_fails_in_one_line(spaced: Spaced, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    result = cli(
        "backup", spaced.server.url(), "--physical", "-o", "wal=fetch", "-o", f"tmpdir={missing}",
        "--repo", spaced.repo,
    )  # fmt: skip
    assert result.returncode != 0
    assert f"cannot make a spool directory in {missing}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_backup_cancelled_while_spooling_removes_the_spool_and_pg_basebackup(spaced: Spaced, tmp_path: Path) -> None:
    """A library caller's timeout (an anyio cancel scope), not only Ctrl-C, cleans up the spool."""
    fake = tmp_path / "bin"
    fake.mkdir()
    tool = fake / "pg_basebackup"  # writes part of a backup, then hangs
    tool.write_text(
        '#!/bin/sh\nwhile [ "$1" != "-D" ]; do shift; done\n'
        'mkdir -p "$2" && head -c 1000000 /dev/zero > "$2/base.tar"\nexec sleep 300\n'
    )
    tool.chmod(0o755)
    spool = tmp_path / "spool"
    spool.mkdir()

    async def main() -> bool:
        with anyio.move_on_after(3) as scope:
            await backup(
                spaced.server.url(),
                repo=spaced.repo,
                source_plugin="postgresql-physical",
                options={"wal": "fetch", "bindir": str(fake), "tmpdir": str(spool)},
            )
        return scope.cancelled_caught

    assert anyio.run(main), "the backup should have been cancelled by the timeout"
    assert list(spool.iterdir()) == []
    assert child_processes("sleep") == []


def test_a_non_empty_directory_a_tablespace_is_mapped_to_is_refused_without_suggesting_a_map(
    spaced: Spaced, restore_parent: Path
) -> None:
    data, moved = restore_parent / "data", restore_parent / "taken"
    moved.mkdir()
    (moved / "precious").write_text("kept")
    result = cli(
        "restore", spaced.backup_id, "--repo", spaced.repo, "--to-dir", str(data),
        "--tablespace-map", f"{spaced.location}={moved}",
    )  # fmt: skip
    assert result.returncode != 0
    assert f"directory mapped for a tablespace {moved} is not empty" in result.stderr
    assert "--tablespace-map" not in result.stderr
    assert [p.name for p in moved.iterdir()] == ["precious"] and not data.exists()


def test_force_is_refused_for_a_physical_restore(spaced: Spaced, restore_parent: Path) -> None:
    result = cli(
        "restore", spaced.backup_id, "--repo", spaced.repo, "--to-dir", str(restore_parent / "data"), "--force"
    )
    assert result.returncode != 0 and "--force does not apply to --to-dir" in result.stderr
