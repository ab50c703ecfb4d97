"""Specification of the ``postgresql`` source against a real PostgreSQL 15 server on loopback.

Content is compared with per-table checksums computed by psycopg, independently of backstream.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from backstream import (
    IntegrityError,
    JobContext,
    Pipeline,
    Plugins,
    SourceError,
    file_sink,
    file_source,
    make_plugin_manager,
)
from fixtures.postgres import PostgresServer
from fixtures.processes import child_processes, descendants
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

MODULE = "backstream_plugins.postgresql.logical"
PLUGIN = "backstream_plugins.postgresql"
BLOB_SIZE = 3 * 1024 * 1024

SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema')"


# --- helpers -----------------------------------------------------------------------------------


def open_source(url: str, **options: str) -> Any:
    """The source for ``url`` as the repository code gets it: through the plugin registry."""
    plugins = Plugins(make_plugin_manager(autoload=False, defaults=(PLUGIN,)))
    scheme = url.split("://", 1)[0]
    for entry in plugins.sources():
        if scheme in entry.factory.schemes:
            return plugins.sources().get(entry.name).open(url, options)
    raise AssertionError(f"no source serves {scheme}://")


def snapshot(server: PostgresServer, dbname: str) -> dict[str, Any]:
    """Everything a restore must reproduce, read with psycopg: per-table row counts and md5 of
    the sorted rows, columns, indexes, constraints and sequence positions."""
    with server.connect(dbname) as conn:
        tables = conn.execute(
            f"""SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN {SYSTEM_SCHEMAS}
                AND n.nspname !~ '^pg_' ORDER BY 1, 2"""
        ).fetchall()
        content = {}
        for schema, table in tables:
            query = sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {}.{} t"
            ).format(sql.Identifier(schema), sql.Identifier(table))
            content[f"{schema}.{table}"] = conn.execute(query).fetchone()
        columns = conn.execute(
            f"""SELECT table_schema, table_name, column_name, data_type, is_nullable, column_default
                FROM information_schema.columns WHERE table_schema NOT IN {SYSTEM_SCHEMAS}
                ORDER BY 1, 2, ordinal_position"""
        ).fetchall()
        indexes = conn.execute(
            f"""SELECT schemaname, indexname, indexdef FROM pg_indexes
                WHERE schemaname NOT IN {SYSTEM_SCHEMAS} ORDER BY 1, 2"""
        ).fetchall()
        constraints = conn.execute(
            f"""SELECT n.nspname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
                JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname NOT IN {SYSTEM_SCHEMAS}
                ORDER BY 1, 2"""
        ).fetchall()
        sequences = conn.execute(
            "SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2"
        ).fetchall()
    return {
        "content": content,
        "columns": columns,
        "indexes": indexes,
        "constraints": constraints,
        "sequences": sequences,
    }


def user_relations(server: PostgresServer, dbname: str) -> int:
    with server.connect(dbname) as conn:
        row = conn.execute(
            f"""SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname NOT IN {SYSTEM_SCHEMAS} AND n.nspname !~ '^pg_'"""
        ).fetchone()
    assert row is not None
    return int(row[0])


def leftover_scratch_databases(server: PostgresServer) -> list[str]:
    with server.connect() as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE '%backstream%'").fetchall()
    return [row[0] for row in rows]


async def read_dump(source: Any, job: JobContext) -> list[bytes]:
    chunks = []
    async with source.dump(job) as stream:
        async for chunk in stream:
            chunks.append(chunk)
    return chunks


async def replay(chunks: list[bytes], *, fail_after: int | None = None) -> AsyncIterator[bytes]:
    """Yield stored chunks; with ``fail_after``, raise IntegrityError after that many."""
    for index, chunk in enumerate(chunks):
        if fail_after is not None and index == fail_after:
            raise IntegrityError("tampered chunk")
        yield chunk


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def all_gone(pids: list[int], within: float = 5.0) -> bool:
    """Every process of ``pids`` is gone within ``within`` seconds: a signalled group's members die
    when the kernel has delivered the signal, a moment after the tool the job waits for."""
    deadline = time.monotonic() + within
    while not all(process_gone(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- the test database -------------------------------------------------------------------------

AWKWARD_SCHEMA = """
CREATE SCHEMA "Sales Dept";
CREATE SCHEMA "ünïcödé";
CREATE SEQUENCE "Sales Dept"."Order Numbers" START 1000;
CREATE TABLE "Sales Dept"."MixedCase" (
    "ID" integer PRIMARY KEY DEFAULT nextval('"Sales Dept"."Order Numbers"'),
    "Größe" numeric(10, 2) CHECK ("Größe" >= 0),
    "select" text,
    "we""ird" text,
    note text
);
CREATE UNIQUE INDEX "MixedCase lower select" ON "Sales Dept"."MixedCase" (lower("select"));
CREATE TABLE "ünïcödé"."Ärger" (
    id bigserial PRIMARY KEY,
    parent integer REFERENCES "Sales Dept"."MixedCase" ("ID"),
    payload jsonb,
    tags text[],
    at timestamptz
);
CREATE INDEX ärger_payload ON "ünïcödé"."Ärger" USING gin (payload);
CREATE TABLE public.empty_table (id integer, value text);
CREATE TABLE public.blobs (id integer PRIMARY KEY, data bytea);
CREATE VIEW "Sales Dept"."Big Orders" AS SELECT "ID", "Größe" FROM "Sales Dept"."MixedCase" WHERE "Größe" > 100;
"""

AWKWARD_TEXTS = [
    "plain",
    "with\nnewline\tand tab",
    "back\\slash and \\. on its own:\n\\.\nafter",
    "quotes ' \" and ``",
    "emoji 🐘 and ümlauts ÄÖÜ ß, 中文",
    "",
    None,
]


@pytest.fixture(scope="module")
def pg_awkward_db(postgres_server: PostgresServer) -> str:
    """A database with awkward names and content, built once for this module."""
    name = postgres_server.create_database(postgres_server.unique_name("awkward"))
    with postgres_server.connect(name) as conn:
        conn.execute(AWKWARD_SCHEMA)
        for index, text in enumerate(AWKWARD_TEXTS * 30):
            conn.execute(
                'INSERT INTO "Sales Dept"."MixedCase" ("Größe", "select", "we""ird", note) VALUES (%s, %s, %s, %s)',
                (None if index % 5 == 0 else index * 3.25, f"key {index}", text, None if index % 2 else text),
            )
        conn.execute(
            """INSERT INTO "ünïcödé"."Ärger" (parent, payload, tags, at)
               SELECT CASE WHEN i % 3 = 0 THEN NULL ELSE 1000 + i END,
                      jsonb_build_object('i', i, 'name', 'Ärger ' || i, 'nested', jsonb_build_array(i, NULL, 'x')),
                      ARRAY['a', NULL, 'ü' || i], '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 hour'
               FROM generate_series(1, 150) AS i"""
        )
        for index in range(3):
            conn.execute("INSERT INTO public.blobs VALUES (%s, %s)", (index, os.urandom(BLOB_SIZE)))
        conn.execute("INSERT INTO public.blobs VALUES (10, NULL), (11, ''::bytea)")
        conn.execute("""SELECT setval('"Sales Dept"."Order Numbers"', 4242)""")
    return name


# --- registration ------------------------------------------------------------------------------


def test_registered_as_postgresql_for_both_url_schemes() -> None:
    plugins = Plugins(make_plugin_manager(autoload=False, defaults=(PLUGIN,)))
    entry = plugins.sources().entry("postgresql")
    assert entry.factory.schemes == {"postgresql", "postgres"}
    assert entry.requires == ("psycopg",)
    assert entry.extra == "postgresql"


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_dump_streamed_to_a_file_restores_identical_content(
    fmt: str, postgres_server: PostgresServer, pg_awkward_db: str, tmp_path: Path
) -> None:
    target = postgres_server.unique_name("restored")
    path = tmp_path / "dump"

    async def main() -> None:
        job = JobContext("backup", {"format": fmt})
        result = await Pipeline(open_source(postgres_server.url(pg_awkward_db)).dump(job), [], file_sink(path)).run()
        assert result.bytes_in > 3 * BLOB_SIZE
        async with file_source(path) as chunks:
            await open_source(postgres_server.url(target)).restore(chunks, JobContext("restore"))

    anyio.run(main)
    try:
        assert snapshot(postgres_server, target) == snapshot(postgres_server, pg_awkward_db)
    finally:
        postgres_server.drop_database(target)


def test_custom_dump_restores_identical_content_with_parallel_jobs(
    postgres_server: PostgresServer, pg_awkward_db: str
) -> None:
    target = postgres_server.unique_name("parallel")

    async def main() -> None:
        chunks = await read_dump(open_source(postgres_server.url(pg_awkward_db)), JobContext("b", {"format": "custom"}))
        await open_source(postgres_server.url(target), jobs="2").restore(replay(chunks), JobContext("r"))

    anyio.run(main)
    try:
        assert snapshot(postgres_server, target) == snapshot(postgres_server, pg_awkward_db)
        assert leftover_scratch_databases(postgres_server) == []
    finally:
        postgres_server.drop_database(target)


def test_directory_dump_files_restore_identical_content(
    postgres_server: PostgresServer, pg_awkward_db: str, tmp_path: Path
) -> None:
    target = postgres_server.unique_name("directory")
    stored = tmp_path / "stored"
    stored.mkdir()

    async def main() -> list[str]:
        job = JobContext("b", {"format": "directory", "jobs": "2"})
        names = []
        async with open_source(postgres_server.url(pg_awkward_db)).dump_files(job) as files:
            async for name, source in files:  # one pipeline per file
                await Pipeline(source, [], file_sink(stored / name)).run()
                names.append(name)
        assert job.metadata["format"] == "directory"
        assert job.metadata["jobs"] == 2

        async def stored_files() -> AsyncIterator[tuple[str, Any]]:
            for name in names:
                yield name, file_source(stored / name)

        await open_source(postgres_server.url(target), jobs="2").restore_files(stored_files(), JobContext("r"))
        return names

    names = anyio.run(main)
    try:
        assert "toc.dat" in names
        assert len(names) > 3
        assert snapshot(postgres_server, target) == snapshot(postgres_server, pg_awkward_db)
    finally:
        postgres_server.drop_database(target)


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_dump_files_of_a_single_stream_format_is_one_file(
    fmt: str, postgres_server: PostgresServer, pg_awkward_db: str
) -> None:
    async def main() -> list[tuple[str, int]]:
        found = []
        source = open_source(postgres_server.url(pg_awkward_db))
        async with source.dump_files(JobContext("b", {"format": fmt})) as files:
            async for name, file in files:
                async with file as chunks:
                    found.append((name, sum([len(chunk) async for chunk in chunks])))
        return found

    found = anyio.run(main)
    assert [name for name, _ in found] == [{"plain": "dump.sql", "custom": "dump.pgdump"}[fmt]]
    assert found[0][1] > 3 * BLOB_SIZE


def test_dump_records_server_version_database_and_wal_lsns(postgres_server: PostgresServer, pg_awkward_db: str) -> None:
    job = JobContext("b", {"format": "custom"})
    anyio.run(read_dump, open_source(postgres_server.url(pg_awkward_db)), job)

    def lsn(text: str) -> int:
        high, low = text.split("/")
        return (int(high, 16) << 32) | int(low, 16)

    meta = job.metadata
    assert meta["kind"] == "postgresql"
    assert meta["database"] == pg_awkward_db
    assert meta["format"] == "custom"
    assert meta["server_version"].startswith("15.")
    assert 150000 <= meta["server_version_num"] < 160000
    assert meta["dump_tool"].startswith("pg_dump (PostgreSQL)")
    assert lsn(meta["wal_lsn_start"]) <= lsn(meta["wal_lsn_stop"])
    assert postgres_server.password not in repr(meta)


def test_chunks_are_non_empty_and_at_most_64_kib(postgres_server: PostgresServer, pg_awkward_db: str) -> None:
    chunks = anyio.run(read_dump, open_source(postgres_server.url(pg_awkward_db)), JobContext("b"))
    assert all(0 < len(chunk) <= 64 * 1024 for chunk in chunks)


def test_password_from_pgpassword_environment_is_used(
    postgres_server: PostgresServer, pg_awkward_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", postgres_server.password)
    url = postgres_server.url(pg_awkward_db, password=False)
    chunks = anyio.run(read_dump, open_source(url), JobContext("b"))
    assert b"PostgreSQL database dump complete" in b"".join(chunks[-3:])


# --- dump failures -----------------------------------------------------------------------------


def test_password_is_passed_by_environment_not_on_the_command_line(
    postgres_server: PostgresServer, pg_awkward_db: str
) -> None:
    async def main() -> tuple[bytes, bytes]:
        async with open_source(postgres_server.url(pg_awkward_db)).dump(JobContext("b")) as chunks:
            await anext(chunks)
            [pid] = child_processes("pg_dump")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            async for _ in chunks:
                pass
        return cmdline, environ

    cmdline, environ = anyio.run(main)
    assert postgres_server.password.encode() not in cmdline
    assert f"PGPASSWORD={postgres_server.password}".encode() in environ.split(b"\0")


def test_pg_dump_killed_midway_fails_the_dump(postgres_server: PostgresServer, pg_awkward_db: str) -> None:
    async def main() -> None:
        async with open_source(postgres_server.url(pg_awkward_db)).dump(JobContext("b")) as chunks:
            await anext(chunks)
            for pid in child_processes("pg_dump"):
                os.kill(pid, signal.SIGKILL)
            async for _ in chunks:
                pass

    with pytest.raises(SourceError, match=r"pg_dump failed \(killed by signal 9\)"):
        anyio.run(main)


def test_server_ending_the_session_midway_fails_the_dump_with_pg_dump_stderr(
    postgres_server: PostgresServer, pg_awkward_db: str
) -> None:
    def terminate_pg_dump_backend() -> int:
        with postgres_server.connect() as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_dump'"
                " AND datname = %s",
                (pg_awkward_db,),
            ).fetchall()
        return len(rows)

    async def main() -> None:
        source = open_source(postgres_server.url(pg_awkward_db))
        async with source.dump(JobContext("b", {"format": "custom"})) as chunks:
            await anext(chunks)
            assert await anyio.to_thread.run_sync(terminate_pg_dump_backend) == 1
            async for _ in chunks:
                pass

    with pytest.raises(SourceError, match=r"pg_dump failed \(exit status 1\): pg_dump: .*") as info:
        anyio.run(main)
    assert "\n" not in str(info.value)


def test_consumer_leaving_early_kills_pg_dump_and_fails(postgres_server: PostgresServer, pg_awkward_db: str) -> None:
    pids: list[int] = []

    async def main() -> None:
        async with open_source(postgres_server.url(pg_awkward_db)).dump(JobContext("b")) as chunks:
            await anext(chunks)
            pids.extend(child_processes("pg_dump"))

    with pytest.raises(SourceError, match="abandoned"):
        anyio.run(main)
    assert len(pids) == 1
    assert process_gone(pids[0])


def test_cancelled_dump_kills_pg_dump(postgres_server: PostgresServer, pg_awkward_db: str) -> None:
    pids: list[int] = []

    async def main() -> None:
        with anyio.CancelScope() as scope:
            async with open_source(postgres_server.url(pg_awkward_db)).dump(JobContext("b")) as chunks:
                await anext(chunks)
                pids.extend(child_processes("pg_dump"))
                scope.cancel()  # while pg_dump is blocked on the full pipe
                await anyio.sleep(10)
        assert scope.cancelled_caught

    anyio.run(main)
    assert len(pids) == 1
    assert process_gone(pids[0])


def test_a_cancelled_dump_kills_what_the_dump_tool_started_too(
    postgres_server: PostgresServer, pg_awkward_db: str, tmp_path: Path
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "pg_dump"  # a wrapper that leaves a helper process running beside pg_dump
    wrapper.write_text(
        f'#!/bin/sh\ncase "$1" in --version) ;; *) sleep 300 & ;; esac\nexec {postgres_server.bindir}/pg_dump "$@"\n'
    )
    wrapper.chmod(0o755)
    below: list[int] = []

    async def main() -> None:
        with anyio.CancelScope() as scope:
            source = open_source(postgres_server.url(pg_awkward_db), bindir=str(bindir))
            async with source.dump(JobContext("b")) as chunks:
                await anext(chunks)
                [pid] = child_processes("pg_dump")
                below.extend([pid, *descendants(pid)])
                scope.cancel()
                await anyio.sleep(10)

    anyio.run(main)
    assert len(below) == 2  # pg_dump and its sleep
    assert all_gone(below)


def test_sigterm_to_a_backup_kills_its_dump_tool_and_what_that_started(
    postgres_server: PostgresServer, pg_awkward_db: str, tmp_path: Path
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "pg_dump"  # slow to start, and leaves a helper process beside pg_dump
    wrapper.write_text(
        '#!/bin/sh\ncase "$1" in --version) ;; *) sleep 300 & sleep 30 ;; esac\n'
        f'exec {postgres_server.bindir}/pg_dump "$@"\n'
    )
    wrapper.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("BACKSTREAM_REPO", "BACKSTREAM_PASSPHRASE")}
    env["BACKSTREAM_AUDIT_LOG"] = str(tmp_path / "audit.log")
    repo = str(tmp_path / "repo")
    run = [sys.executable, "-m", "backstream.cli.main"]
    subprocess.run([*run, "init", "--repo", repo], env=env, check=True, capture_output=True)
    url = postgres_server.url(pg_awkward_db)
    process = subprocess.Popen(
        [*run, "backup", url, "--repo", repo, "-o", f"bindir={bindir}"], env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while len(below := descendants(process.pid)) < 3:  # the wrapper, its sleep 300 and sleep 30
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert all_gone(below)


def test_consumer_error_propagates_unchanged_and_kills_pg_dump(
    postgres_server: PostgresServer, pg_awkward_db: str
) -> None:
    pids: list[int] = []

    async def main() -> None:
        async with open_source(postgres_server.url(pg_awkward_db)).dump(JobContext("b")) as chunks:
            await anext(chunks)
            pids.extend(child_processes("pg_dump"))
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        anyio.run(main)
    assert process_gone(pids[0])


def test_unreachable_server_fails_quickly(postgres_server: PostgresServer) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"cannot connect to database 'x' on 127\.0\.0\.1:\d+: .*refused"):
        anyio.run(read_dump, open_source(f"postgresql://u:secret@127.0.0.1:{port}/x"), JobContext("b"))
    assert time.monotonic() - started < 5


def test_wrong_password_fails_without_revealing_it(postgres_server: PostgresServer, pg_awkward_db: str) -> None:
    url = f"postgresql://{postgres_server.user}:not-the-Password-42@127.0.0.1:{postgres_server.port}/{pg_awkward_db}"
    with pytest.raises(SourceError, match="password authentication failed") as info:
        anyio.run(read_dump, open_source(url), JobContext("b"))
    assert "not-the-Password-42" not in str(info.value)


def test_missing_database_fails(postgres_server: PostgresServer) -> None:
    with pytest.raises(SourceError, match='database "no_such_db" does not exist'):
        anyio.run(read_dump, open_source(postgres_server.url("no_such_db")), JobContext("b"))


# --- restores ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dumps(postgres_server: PostgresServer, pg_awkward_db: str) -> dict[str, list[bytes]]:
    """One plain and one custom dump of the awkward database, in memory."""
    return {
        fmt: anyio.run(read_dump, open_source(postgres_server.url(pg_awkward_db)), JobContext("b", {"format": fmt}))
        for fmt in ("plain", "custom")
    }


def restore(server: PostgresServer, dbname: str, data: AsyncIterator[bytes], **options: str) -> JobContext:
    job = JobContext("r")
    anyio.run(open_source(server.url(dbname), **options).restore, data, job)
    return job


def test_restore_into_existing_empty_database(
    postgres_server: PostgresServer, pg_awkward_db: str, dumps: dict[str, list[bytes]], postgres_database: str
) -> None:
    job = restore(postgres_server, postgres_database, replay(dumps["plain"]))
    assert job.metadata == {"target_database": postgres_database, "replaced": False, "created": False}
    assert snapshot(postgres_server, postgres_database) == snapshot(postgres_server, pg_awkward_db)


def test_restore_refuses_a_non_empty_target_without_force(
    postgres_server: PostgresServer, pg_awkward_db: str, dumps: dict[str, list[bytes]]
) -> None:
    before = snapshot(postgres_server, pg_awkward_db)
    with pytest.raises(SourceError, match=r"is not empty.*--force"):
        restore(postgres_server, pg_awkward_db, replay(dumps["custom"]))
    assert snapshot(postgres_server, pg_awkward_db) == before


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_restore_with_force_replaces_a_non_empty_target(
    fmt: str, postgres_server: PostgresServer, pg_awkward_db: str, dumps: dict[str, list[bytes]], postgres_database: str
) -> None:
    with postgres_server.connect(postgres_database) as conn:
        conn.execute("CREATE TABLE old_stuff (x int); INSERT INTO old_stuff VALUES (1)")
    job = restore(postgres_server, postgres_database, replay(dumps[fmt]), force="true")
    assert job.metadata["replaced"] is True
    assert snapshot(postgres_server, postgres_database) == snapshot(postgres_server, pg_awkward_db)
    assert leftover_scratch_databases(postgres_server) == []


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_data_failing_midway_leaves_no_new_database(
    fmt: str, postgres_server: PostgresServer, dumps: dict[str, list[bytes]]
) -> None:
    target = postgres_server.unique_name("never")
    chunks = dumps[fmt]
    with pytest.raises(IntegrityError, match="tampered chunk"):
        restore(postgres_server, target, replay(chunks, fail_after=len(chunks) - 2))
    assert not postgres_server.database_exists(target)


@pytest.mark.parametrize("fmt", ["plain", "custom"])
def test_data_failing_midway_leaves_an_empty_target_empty(
    fmt: str, postgres_server: PostgresServer, dumps: dict[str, list[bytes]], postgres_database: str
) -> None:
    chunks = dumps[fmt]
    with pytest.raises(IntegrityError):
        restore(postgres_server, postgres_database, replay(chunks, fail_after=len(chunks) // 2))
    assert user_relations(postgres_server, postgres_database) == 0


def test_data_failing_midway_with_force_leaves_the_target_unchanged(
    postgres_server: PostgresServer, dumps: dict[str, list[bytes]], postgres_database: str
) -> None:
    with postgres_server.connect(postgres_database) as conn:
        conn.execute("CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (7)")
    before = snapshot(postgres_server, postgres_database)
    chunks = dumps["custom"]
    with pytest.raises(IntegrityError):
        restore(postgres_server, postgres_database, replay(chunks, fail_after=len(chunks) - 1), force="1", jobs="2")
    assert snapshot(postgres_server, postgres_database) == before
    assert leftover_scratch_databases(postgres_server) == []


def test_truncated_plain_dump_restores_nothing(
    postgres_server: PostgresServer, dumps: dict[str, list[bytes]], postgres_database: str
) -> None:
    chunks = dumps["plain"]
    with pytest.raises(SourceError, match="incomplete"):
        restore(postgres_server, postgres_database, replay(chunks[: len(chunks) - 1]))
    assert user_relations(postgres_server, postgres_database) == 0


def test_truncated_custom_dump_restores_nothing(
    postgres_server: PostgresServer, dumps: dict[str, list[bytes]], postgres_database: str
) -> None:
    data = b"".join(dumps["custom"])
    with pytest.raises(SourceError, match="pg_restore failed"):
        restore(postgres_server, postgres_database, replay([data[: len(data) - 1000]]))
    assert user_relations(postgres_server, postgres_database) == 0


def test_sql_error_fails_with_psql_stderr_and_applies_nothing(
    postgres_server: PostgresServer, postgres_database: str
) -> None:
    script = b"CREATE TABLE first_one (x int);\nTHIS IS NOT SQL;\n-- PostgreSQL database dump complete\n"
    with pytest.raises(SourceError, match=r"psql failed \(exit status 3\): .*syntax error"):
        restore(postgres_server, postgres_database, replay([script]))
    assert user_relations(postgres_server, postgres_database) == 0


def test_restore_target_must_name_a_database(postgres_server: PostgresServer, dumps: dict[str, list[bytes]]) -> None:
    from backstream import ConfigError

    url = f"postgresql://{postgres_server.user}@127.0.0.1:{postgres_server.port}"
    with pytest.raises(ConfigError, match="must name a database"):
        anyio.run(open_source(url).restore, replay(dumps["plain"]), JobContext("r"))


def test_force_fails_cleanly_while_other_sessions_use_the_target(
    postgres_server: PostgresServer, dumps: dict[str, list[bytes]], postgres_database: str
) -> None:
    with postgres_server.connect(postgres_database) as conn:
        conn.execute("CREATE TABLE busy (x int); INSERT INTO busy VALUES (1)")
        before = snapshot(postgres_server, postgres_database)
        with pytest.raises(SourceError, match="other sessions"):
            restore(postgres_server, postgres_database, replay(dumps["custom"]), force="true")
    assert snapshot(postgres_server, postgres_database) == before
    assert leftover_scratch_databases(postgres_server) == []


PG_TEXT = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))


@settings(max_examples=6, deadline=None)
@given(
    fmt=st.sampled_from(["plain", "custom"]),
    table=st.text(PG_TEXT, min_size=1, max_size=15),
    values=st.lists(st.one_of(st.none(), st.text(PG_TEXT, max_size=200)), max_size=12),
)
def test_any_table_name_and_text_values_round_trip(
    postgres_server: PostgresServer, fmt: str, table: str, values: list[str | None]
) -> None:
    source = postgres_server.create_database(postgres_server.unique_name("prop"))
    target = postgres_server.unique_name("prop_restored")
    try:
        with postgres_server.connect(source) as conn:
            conn.execute(sql.SQL("CREATE TABLE {} (v text)").format(sql.Identifier(table)))
            for value in values:
                conn.execute(sql.SQL("INSERT INTO {} VALUES ({})").format(sql.Identifier(table), sql.Literal(value)))

        async def main() -> None:
            chunks = await read_dump(open_source(postgres_server.url(source)), JobContext("b", {"format": fmt}))
            await open_source(postgres_server.url(target)).restore(replay(chunks), JobContext("r"))

        anyio.run(main)
        assert snapshot(postgres_server, target) == snapshot(postgres_server, source)
    finally:
        postgres_server.drop_database(source)
        postgres_server.drop_database(target)


RESTORE_AND_DIE = textwrap.dedent(
    """
    import sys, anyio
    from backstream import JobContext
    from backstream_plugins.postgresql.logical import PostgresFactory

    async def data():
        with open(sys.argv[2], "rb") as handle:
            head = handle.read()
        yield head[: len(head) // 2]
        print("half sent", flush=True)
        await anyio.sleep(60)

    anyio.run(PostgresFactory().open(sys.argv[1], {}).restore, data(), JobContext("r"))
    """
)


def test_a_tool_that_gets_no_password_fails_at_once_instead_of_asking(
    postgres_server: PostgresServer, dumps: dict[str, list[bytes]], tmp_path: Path
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    psql = bindir / "psql"  # as if ~/.pgpass served psycopg but not the tool
    psql.write_text(f'#!/bin/sh\nunset PGPASSWORD\nexec {postgres_server.bindir}/psql "$@"\n')
    psql.chmod(0o755)
    target = postgres_server.unique_name("nopass")
    try:

        async def main() -> None:
            source = open_source(postgres_server.url(target), bindir=str(bindir))
            await source.restore(replay(dumps["plain"]), JobContext("r"))

        with pytest.raises(SourceError, match=r"psql failed .*no password supplied"):
            anyio.run(main)
    finally:
        postgres_server.drop_database(target)


def test_restore_process_killed_midway_commits_nothing(
    postgres_server: PostgresServer, dumps: dict[str, list[bytes]], postgres_database: str, tmp_path: Path
) -> None:
    dump = tmp_path / "dump.sql"
    dump.write_bytes(b"".join(dumps["plain"]))
    child = subprocess.Popen(
        [sys.executable, "-c", RESTORE_AND_DIE, postgres_server.url(postgres_database), str(dump)],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"half sent\n"
        time.sleep(0.5)  # let psql apply what it has
        child.kill()
    finally:
        child.wait()
    wait_for(lambda: not _sessions(postgres_server, postgres_database))
    assert user_relations(postgres_server, postgres_database) == 0


def _sessions(server: PostgresServer, dbname: str) -> int:
    with server.connect() as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (dbname,)).fetchone()
    assert row is not None
    return int(row[0])


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_bindir_whose_pg_dump_cannot_run_fails_with_one_line(
    postgres_server: PostgresServer, pg_awkward_db: str, tmp_path: Path
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "pg_dump").write_text("#!/bin/sh\nexit 0\n")  # present, but not executable
    source = open_source(postgres_server.url(pg_awkward_db), bindir=str(bindir))
    with pytest.raises(SourceError, match=r"cannot run .*pg_dump: Permission denied"):
        anyio.run(read_dump, source, JobContext("b"))


@pytest.mark.parametrize("fmt", ["plain", "custom", "directory"])
def test_a_failed_dump_still_records_which_pg_dump_ran(
    postgres_server: PostgresServer, pg_awkward_db: str, tmp_path: Path, fmt: str
) -> None:
    """A pg_dump older than the server is the usual cause of a failed dump: its version must be in the record."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "pg_dump"  # answers --version like pg_dump, fails every dump
    wrapper.write_text(
        f'#!/bin/sh\ncase "$1" in --version) exec {postgres_server.bindir}/pg_dump --version ;; esac\n'
        'echo "pg_dump: error: aborting because of server version mismatch" >&2\nexit 1\n'
    )
    wrapper.chmod(0o755)
    job = JobContext("b")

    async def main() -> None:
        source = open_source(postgres_server.url(pg_awkward_db), bindir=str(bindir), format=fmt)
        async with source.dump_files(job) as files:
            async for _, data in files:
                async with data as chunks:
                    async for _ in chunks:
                        pass

    with pytest.raises(SourceError, match="server version mismatch"):
        anyio.run(main)
    assert job.metadata["dump_tool"].startswith("pg_dump (PostgreSQL) 15")


def test_a_pg_dump_that_never_answers_version_does_not_hold_up_the_dump(
    postgres_server: PostgresServer, pg_awkward_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "pg_dump"
    wrapper.write_text(
        f'#!/bin/sh\ncase "$1" in --version) exec sleep 30 ;; esac\nexec {postgres_server.bindir}/pg_dump "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setattr(sys.modules[MODULE], "VERSION_SECONDS", 0.5)
    job = JobContext("b")

    async def main() -> int:
        size = 0
        async with open_source(postgres_server.url(pg_awkward_db), bindir=str(bindir)).dump(job) as chunks:
            async for chunk in chunks:
                size += len(chunk)
        return size

    started = time.monotonic()
    assert anyio.run(main) > 0
    assert time.monotonic() - started < 10
    assert job.metadata["dump_tool"] == ""
