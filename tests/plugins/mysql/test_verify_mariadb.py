"""Verification of MariaDB backups: a drill into a temporary schema, recorded and shown by ``list``;
CHECK TABLE; a changed value and a dropped index caught at the comprehensive level.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from backstream import Plugins
from backstream.repository import Manifest
from backstream.verify.drill import verify_target
from fixtures.mariadb import MariaDBServer
from fixtures.verify_cli import cli, cli_json, make_env

SCHEMA = (
    "CREATE TABLE customer (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, balance DECIMAL(10, 2), "
    "note TEXT, KEY customer_name (name)) ENGINE=InnoDB",
    "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer INT, "
    "CONSTRAINT orders_customer FOREIGN KEY (customer) REFERENCES customer (id)) ENGINE=InnoDB",
)


@pytest.fixture
def source_db(mariadb_server: MariaDBServer) -> Iterator[str]:
    name = mariadb_server.create_database(mariadb_server.unique_name("verify"))
    conn = mariadb_server.connect(name)
    try:
        with conn.cursor() as cur:
            for statement in SCHEMA:
                cur.execute(statement)
            cur.executemany(
                "INSERT INTO customer VALUES (%s, %s, %s, %s)",
                [(i, f"name {i}", i * 1.5, None if i % 4 else "quote ' and, comma") for i in range(1, 201)],
            )
            cur.executemany("INSERT INTO orders (customer) VALUES (%s)", [(1 + i % 200,) for i in range(300)])
    finally:
        conn.close()
    try:
        yield name
    finally:
        mariadb_server.drop_database(name)


@pytest.fixture
def made(tmp_path: Path, mariadb_server: MariaDBServer, source_db: str) -> tuple[dict[str, str], str, str]:
    env = make_env(tmp_path)
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=env)
    return env, repo, cli_json("backup", mariadb_server.url(source_db), "--repo", repo, env=env)["backup_id"]


def test_verify_latest_passes_and_is_recorded(
    made: tuple[dict[str, str], str, str], mariadb_server: MariaDBServer
) -> None:
    env, repo, backup_id = made
    scratch = mariadb_server.url("mysql")
    drill = cli_json("verify", "latest", "--repo", repo, "--scratch", scratch, "--level", "comprehensive", env=env)
    statuses = {c["name"]: c["status"] for c in drill["checks"]}
    assert drill["status"] == "pass", drill
    assert statuses["check table"] == "pass"
    assert statuses["checksum customer"] == "pass"
    assert statuses["constraints orders"] == "pass"
    listed = cli_json("list", "--repo", repo, env=env)[0]
    assert listed["backup_id"] == backup_id and listed["last_verified"]["level"] == "comprehensive"
    assert "verified     pass" in cli("show", "latest", "--repo", repo, env=env).stdout
    assert not [d for d in mariadb_server.databases() if d.startswith("backstream_verify_")]


@pytest.fixture
def restored(
    made: tuple[dict[str, str], str, str], mariadb_server: MariaDBServer
) -> Iterator[tuple[Manifest, str, str]]:
    env, repo, backup_id = made
    name = mariadb_server.unique_name("restored")
    cli("restore", backup_id, "--repo", repo, "--to", mariadb_server.url(name), env=env)
    path = Path(repo, "backups", backup_id, "manifest.json")
    try:
        yield Manifest.from_json(path.read_bytes(), where=str(path)), mariadb_server.url(name), name
    finally:
        mariadb_server.drop_database(name)


def comprehensive(manifest: Manifest, url: str) -> dict[str, tuple[str, str]]:
    async def run() -> dict[str, tuple[str, str]]:
        results = await verify_target(Plugins.load(), manifest, url, "comprehensive")
        return {r.name: (r.status, r.detail) for r in results}

    return anyio.run(run)


def test_the_comprehensive_level_detects_one_changed_value(
    restored: tuple[Manifest, str, str], mariadb_server: MariaDBServer
) -> None:
    manifest, url, name = restored
    mariadb_server.execute("UPDATE customer SET note = 'changed' WHERE id = 8", database=name)
    results = comprehensive(manifest, url)
    assert results["checksum customer"][0] == "fail"
    assert results["rows customer"][0] == "pass"
    assert results["checksum orders"][0] == "pass"


def test_the_comprehensive_level_detects_a_dropped_index(
    restored: tuple[Manifest, str, str], mariadb_server: MariaDBServer
) -> None:
    manifest, url, name = restored
    mariadb_server.execute("DROP INDEX customer_name ON customer", database=name)
    results = comprehensive(manifest, url)
    status, detail = results["indexes customer"]
    assert status == "fail" and "missing customer_name" in detail
    assert results["check table"][0] == "pass"
