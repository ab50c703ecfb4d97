"""The Python API on anyio's trio backend: backups and restores of SQLite, PostgreSQL (plain, custom,
directory) and MariaDB with encryption give back the same rows, and a failing stage still aborts the run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from backstream import Pipeline, Plugins, StorageError, Transform, iterable_source
from backstream.jobs import KeyOptions, backup, restore
from backstream.repository import Repository
from fixtures.crypto_objects import FAST_KDF
from fixtures.mariadb import MariaDBServer
from fixtures.postgres import PostgresServer


@pytest.fixture(autouse=True)
def _passphrase(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BACKSTREAM_PASSPHRASE", "trio passphrase")
    monkeypatch.setenv("BACKSTREAM_AUDIT_LOG", str(tmp_path / "audit.log"))


def round_trip(source: str, target: str, repo: str, **options: str) -> None:
    """init, backup (zstd + passphrase) and restore, all on trio."""

    async def main() -> None:
        plugins = Plugins.load()
        await Repository.init(plugins.open_storage(repo))
        keys = KeyOptions(provider_options=FAST_KDF)  # one per job
        made = await backup(source, repo=repo, plugins=plugins, encrypt=["passphrase"], keys=keys, options=options)
        keys = KeyOptions(provider_options=FAST_KDF)
        await restore(made.backup_id, repo=repo, to=target, plugins=plugins, keys=keys, options=options)

    anyio.run(main, backend="trio")


def test_sqlite_round_trips_on_trio(tmp_path: Path) -> None:
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (v text)")
        conn.executemany("INSERT INTO t VALUES (?)", [(f"row {i}" * 20,) for i in range(20_000)])
    round_trip(f"sqlite://{source}", f"sqlite://{target}", str(tmp_path / "repo"))
    with sqlite3.connect(source) as a, sqlite3.connect(target) as b:
        query = "SELECT v FROM t ORDER BY rowid"
        assert a.execute(query).fetchall() == b.execute(query).fetchall()


@pytest.mark.parametrize("fmt", ["plain", "custom", "directory"])
def test_postgresql_round_trips_on_trio(postgres_server: PostgresServer, tmp_path: Path, fmt: str) -> None:
    source = postgres_server.create_database(postgres_server.unique_name("trio"))
    target = postgres_server.unique_name("trio_restored")
    try:
        with postgres_server.connect(source) as conn:
            conn.execute("CREATE TABLE t AS SELECT i, md5(i::text) AS h FROM generate_series(1, 30000) i")
        round_trip(
            postgres_server.url(source), postgres_server.url(target), str(tmp_path / "repo"), format=fmt, jobs="2"
        )
        query = "SELECT i, h FROM t ORDER BY i"
        with postgres_server.connect(source) as a, postgres_server.connect(target) as b:
            assert a.execute(query).fetchall() == b.execute(query).fetchall()
    finally:
        postgres_server.drop_database(source)
        postgres_server.drop_database(target)


def test_mariadb_round_trips_on_trio(mariadb_server: MariaDBServer, tmp_path: Path) -> None:
    source = mariadb_server.create_database(mariadb_server.unique_name("trio"))
    target = mariadb_server.unique_name("trio_restored")
    try:
        mariadb_server.execute("CREATE TABLE t (i int PRIMARY KEY, v text)", database=source)
        mariadb_server.execute("INSERT INTO t SELECT seq, md5(seq) FROM seq_1_to_20000", database=source)
        round_trip(mariadb_server.url(source), mariadb_server.url(target), str(tmp_path / "repo"))
        with mariadb_server.connect(source) as a, mariadb_server.connect(target) as b:
            rows = []
            for conn in (a, b):
                with conn.cursor() as cursor:
                    cursor.execute("SELECT i, v FROM t ORDER BY i")
                    rows.append(cursor.fetchall())
            assert rows[0] == rows[1] and len(rows[0]) == 20_000
    finally:
        mariadb_server.drop_database(source)
        mariadb_server.drop_database(target)


def test_a_failing_sink_aborts_the_pipeline_on_trio() -> None:
    from contextlib import asynccontextmanager

    written: list[bytes] = []

    class Failing:
        async def write(self, chunk: bytes) -> None:
            written.append(chunk)
            if len(written) == 3:
                raise StorageError("disk full")

    @asynccontextmanager
    async def sink() -> AsyncIterator[Failing]:
        yield Failing()

    class Copy:
        def update(self, chunk: bytes) -> bytes:
            return chunk

        def finish(self) -> bytes:
            return b""

    async def main() -> None:
        pieces = [bytes([i]) * 65536 for i in range(64)]
        await Pipeline(iterable_source(pieces), [Transform("copy", Copy())], sink()).run()

    with pytest.raises(StorageError, match="disk full"):
        anyio.run(main, backend="trio")
    assert len(written) == 3
