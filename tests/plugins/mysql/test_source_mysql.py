"""Specification of the ``mysql`` source against a real MariaDB server on loopback.

Content is compared with checksums computed here (CHECKSUM TABLE and hashed ordered rows), not by backstream.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from backstream import (
    CHUNK_SIZE,
    IntegrityError,
    JobContext,
    Pipeline,
    Plugins,
    SourceError,
    file_sink,
    file_source,
    make_plugin_manager,
)
from backstream_plugins.mysql.source import MySQLFactory, MySQLSource, parse_url, redact
from fixtures.mariadb import MariaDBServer, quote_ident
from fixtures.processes import child_processes
from hypothesis import given
from hypothesis import strategies as st

BLOB_SIZE = 6 * 1024 * 1024
ODD_TABLE = 'Grüße "quoted" `tick` 表'
DUMP_TOOLS = ("mariadb-dump", "mysqldump")


# --- data with awkward content ---------------------------------------------------------------


def populate(server: MariaDBServer, db: str) -> None:
    """Quoted/mixed-case/non-ASCII identifiers, NULLs, an empty table, a 6 MiB blob, emoji, FK + index,
    a view, a trigger, a procedure, a function and an event."""
    rng = random.Random(4)
    conn = server.connect(db)
    try:
        with conn.cursor() as cur:
            odd = quote_ident(ODD_TABLE)
            cur.execute(
                f"CREATE TABLE {odd} (`ID` INT PRIMARY KEY, `naïve Col` VARCHAR(100), `Emoji` TEXT, `n` INT NULL, "
                "`amount` DECIMAL(20,6) NULL, `f` DOUBLE NULL, `at` DATETIME(6) NULL) CHARACTER SET utf8mb4"
            )
            cur.executemany(
                f"INSERT INTO {odd} VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [
                    (1, "ÅÄÖ ñ 漢字", "🙂🚀 emoji 𝄞", None, "12345.678901", 1.5e300, "2024-02-29 23:59:59.123456"),
                    (2, None, None, None, None, None, None),
                    (3, "quote ' \" ` \\ backslash", "tab\tnewline\nnul\0end", -7, "-0.000001", -0.0, None),
                    (4, "", "", 0, "0", 0.1, "1970-01-01 00:00:01"),
                ],
            )
            cur.execute("CREATE TABLE `empty_table` (`id` INT PRIMARY KEY, `x` TEXT)")
            cur.execute("CREATE TABLE `CamelCase` (`Key` VARCHAR(20) PRIMARY KEY, `Value` VARCHAR(20) NULL)")
            cur.executemany("INSERT INTO `CamelCase` VALUES (%s, %s)", [("A", "a"), ("b", None), ("Ω", "ä")])
            cur.execute("CREATE TABLE `blobs` (`id` INT PRIMARY KEY, `payload` LONGBLOB NULL)")
            cur.executemany(
                "INSERT INTO `blobs` VALUES (%s, %s)",
                [(1, rng.randbytes(BLOB_SIZE)), (2, b""), (3, None), (4, bytes(range(256)) * 4)],
            )
            cur.execute(
                "CREATE TABLE `parent` (`id` INT PRIMARY KEY, `Name` VARCHAR(64) NOT NULL, "
                "UNIQUE KEY `by_name` (`Name`))"
            )
            cur.execute(
                "CREATE TABLE `child` (`id` INT PRIMARY KEY, `parent_id` INT NOT NULL, `note` TEXT NULL, "
                "KEY `by_parent` (`parent_id`), "
                "CONSTRAINT `child_parent` FOREIGN KEY (`parent_id`) REFERENCES `parent` (`id`))"
            )
            cur.executemany("INSERT INTO `parent` VALUES (%s, %s)", [(i, f"parent {i} ✓") for i in range(1, 301)])
            cur.executemany(
                "INSERT INTO `child` VALUES (%s, %s, %s)",
                [(i, 1 + i % 300, None if i % 7 == 0 else f"note {i} " + "ž" * (i % 50)) for i in range(1, 2001)],
            )
            cur.execute(
                "CREATE VIEW `children per parent` AS "
                "SELECT `parent_id`, COUNT(*) AS `n` FROM `child` GROUP BY `parent_id`"
            )
            cur.execute("CREATE VIEW `v_on_view` AS SELECT `n` FROM `children per parent` WHERE `n` > 6")
            cur.execute("CREATE VIEW `a view on a view on a view` AS SELECT COUNT(*) AS `c` FROM `v_on_view`")
            cur.execute(
                "CREATE TRIGGER `child_note` BEFORE INSERT ON `child` FOR EACH ROW SET NEW.`note` = UPPER(NEW.`note`)"
            )
            cur.execute("CREATE PROCEDURE `count children`() SELECT COUNT(*) FROM `child`")
            cur.execute("CREATE FUNCTION `twice`(x INT) RETURNS INT DETERMINISTIC RETURN x * 2")
            cur.execute("CREATE EVENT `nightly` ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM `empty_table`")
    finally:
        conn.close()


def fingerprints(server: MariaDBServer, db: str) -> dict[str, tuple[int, str, int]]:
    """Per base table: CHECKSUM TABLE, sha256 of all rows ordered by primary key, row count."""
    conn = server.connect(db)
    result: dict[str, tuple[int, str, int]] = {}
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
                (db,),
            )
            for (table,) in cur.fetchall():
                cur.execute(f"CHECKSUM TABLE {quote_ident(db)}.{quote_ident(table)} EXTENDED")
                checksum = int(cur.fetchone()[1])
                cur.execute(
                    "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s "
                    "AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
                    (db, table),
                )
                keys = ", ".join(quote_ident(row[0]) for row in cur.fetchall())
                cur.execute(f"SELECT * FROM {quote_ident(table)} ORDER BY {keys}")
                digest = hashlib.sha256()
                count = 0
                for row in cur.fetchall():
                    digest.update(repr(row).encode())
                    count += 1
                result[table] = (checksum, digest.hexdigest(), count)
    finally:
        conn.close()
    return result


def schema_objects(server: MariaDBServer, db: str) -> dict[str, list[str]]:
    """Names of views, triggers, routines and events, and each table's foreign keys with their targets."""
    rows = {
        "views": server.execute("SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s", (db,)),
        "triggers": server.execute(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (db,)
        ),
        "routines": server.execute(
            "SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s",
            (db,),
        ),
        "events": server.execute("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s", (db,)),
        "foreign_keys": server.execute(
            "SELECT CONCAT_WS(' ', TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME) "
            "FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = %s AND REFERENCED_TABLE_NAME IS NOT NULL",
            (db,),
        ),
        "indexes": server.execute(
            "SELECT DISTINCT CONCAT(TABLE_NAME, ' ', INDEX_NAME) FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = %s",
            (db,),
        ),
    }
    return {kind: sorted(str(row[0]).replace(db, "<db>") for row in found) for kind, found in rows.items()}


def leftovers(server: MariaDBServer) -> list[str]:
    return [name for name in server.databases() if "__backstream_" in name]


# --- running the source ------------------------------------------------------------------------


def job(**options: str) -> JobContext:
    return JobContext(job_id="test", options=options)


async def dump_to(source: MySQLSource, path: Path, context: JobContext) -> None:
    await Pipeline(source.dump(context), [], file_sink(path, fsync=False)).run()


async def restore_from(url: str, path: Path, **options: str) -> None:
    async with file_source(path) as chunks:
        await MySQLFactory().open(url, {}).restore(chunks, job(**options))


async def failing_after(path: Path, limit: int) -> AsyncIterator[bytes]:
    """The dump's first ``limit`` bytes, then an IntegrityError, as a tampered object would."""
    sent = 0
    async with file_source(path) as chunks:
        async for chunk in chunks:
            yield chunk
            sent += len(chunk)
            if sent >= limit:
                raise IntegrityError("authentication failed: the object was tampered with")


def dump_children() -> list[int]:
    """Our running dump-tool child processes."""
    return [pid for name in DUMP_TOOLS for pid in child_processes(name)]


@dataclass(frozen=True)
class Dumped:
    db: str
    path: Path
    metadata: dict[str, Any]
    status_before: tuple[str, int]
    status_after: tuple[str, int]
    fingerprints: dict[str, tuple[int, str, int]]
    objects: dict[str, list[str]]


@pytest.fixture(scope="module")
def dumped(mariadb_server: MariaDBServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dumped]:
    """The awkward database, dumped once through a Pipeline into a file."""
    db = mariadb_server.create_database(mariadb_server.unique_name("src Ünï"))
    populate(mariadb_server, db)
    path = tmp_path_factory.mktemp("mysql") / "dump.sql"
    context = job()
    before = mariadb_server.master_status()
    anyio.run(dump_to, MySQLFactory().open(mariadb_server.url(db), {}), path, context)
    after = mariadb_server.master_status()
    yield Dumped(
        db, path, context.metadata, before, after, fingerprints(mariadb_server, db), schema_objects(mariadb_server, db)
    )
    mariadb_server.drop_database(db)


# --- registration and URLs --------------------------------------------------------------------------


def test_registry_serves_mysql_and_mariadb_schemes() -> None:
    plugins = Plugins(make_plugin_manager(autoload=False, defaults=("backstream_plugins.mysql",)))
    factory = plugins.sources().get("mysql")
    assert factory.schemes == frozenset({"mysql", "mariadb"})
    assert isinstance(factory.open("mariadb://u@h:3307/db", {}), MySQLSource)


@given(
    user=st.text(min_size=1, max_size=20),
    password=st.text(max_size=30),
    database=st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s),
)
def test_url_parts_survive_percent_encoding_and_redaction_drops_the_password(
    user: str, password: str, database: str
) -> None:
    url = f"mysql://{quote(user, safe='')}:{quote(password, safe='')}@db.example:3307/{quote(database, safe='')}"
    endpoint = parse_url(url)
    assert (endpoint.user, endpoint.password, endpoint.database, endpoint.port) == (user, password, database, 3307)
    redacted = parse_url(redact(url))
    assert (redacted.user, redacted.password, redacted.database) == (user, "***", database)


def test_redacted_url_hides_the_password() -> None:
    assert redact("mysql://me:s3cr%40t@host:3306/db") == "mysql://me:***@host:3306/db"
    assert redact("mysql://me@host/db") == "mysql://me@host/db"


# --- dump -------------------------------------------------------------------------------------------


def test_dump_records_binlog_file_and_position_of_the_snapshot(dumped: Dumped) -> None:
    assert dumped.status_before == dumped.status_after  # nothing wrote between: the snapshot is this position
    assert (dumped.metadata["binlog_file"], dumped.metadata["binlog_position"]) == dumped.status_after
    assert dumped.metadata["gtid_position"]


def test_dump_records_server_version_flavour_and_database(dumped: Dumped, mariadb_server: MariaDBServer) -> None:
    meta = dumped.metadata
    assert meta["server_version"] == mariadb_server.version
    assert meta["flavor"] == "mariadb"
    assert meta["database"] == dumped.db
    assert meta["server_id"] == 1
    assert meta["database_collation"] == "utf8mb4_unicode_ci"
    assert mariadb_server.password not in repr(meta)


def test_dump_is_plain_sql_with_the_coordinates_comment(dumped: Dumped) -> None:
    head = dumped.path.read_bytes()[:8192]
    assert b"CHANGE MASTER TO MASTER_LOG_FILE=" in head
    assert b"CREATE DATABASE" not in dumped.path.read_bytes()  # restorable under any database name


def test_password_reaches_the_dump_tool_only_through_a_private_option_file(
    mariadb_server: MariaDBServer, dumped: Dumped
) -> None:
    seen: dict[str, Any] = {}

    async def main() -> None:
        source = MySQLFactory().open(mariadb_server.url(dumped.db), {})
        async with source.dump(job()) as chunks:
            async for _chunk in chunks:
                if not seen:
                    (pid,) = dump_children()
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    seen["argv"] = argv
                    option = next(a for a in argv if a.startswith(b"--defaults-extra-file="))
                    seen["file"] = option.split(b"=", 1)[1].decode()
                    seen["mode"] = stat.S_IMODE(os.stat(seen["file"]).st_mode)

    anyio.run(main)
    assert mariadb_server.password.encode() not in b"\0".join(seen["argv"])
    assert seen["mode"] == 0o600
    assert not os.path.exists(seen["file"])


def test_dump_tool_killed_midway_fails_the_dump(mariadb_server: MariaDBServer, dumped: Dumped, tmp_path: Path) -> None:
    async def main() -> None:
        source = MySQLFactory().open(mariadb_server.url(dumped.db), {})
        async with source.dump(job()) as chunks:
            killed = False
            async for _chunk in chunks:
                if not killed:
                    for pid in dump_children():
                        os.kill(pid, 9)
                    killed = True

    with pytest.raises(SourceError, match="killed by signal 9"):
        anyio.run(main)
    assert dump_children() == []


def test_consumer_failure_kills_the_tool_and_propagates_unchanged(
    mariadb_server: MariaDBServer, dumped: Dumped
) -> None:
    async def main() -> None:
        source = MySQLFactory().open(mariadb_server.url(dumped.db), {})
        async with source.dump(job()) as chunks:
            async for _chunk in chunks:
                raise KeyError("the sink failed")

    with pytest.raises(KeyError, match="the sink failed"):
        anyio.run(main)
    assert dump_children() == []


def test_dump_without_binlog_coordinates_when_asked(
    mariadb_server: MariaDBServer, dumped: Dumped, tmp_path: Path
) -> None:
    context = job(binlog="false")
    anyio.run(dump_to, MySQLFactory().open(mariadb_server.url(dumped.db), {}), tmp_path / "d.sql", context)
    assert "binlog_file" not in context.metadata
    assert b"CHANGE MASTER" not in (tmp_path / "d.sql").read_bytes()


def test_password_may_come_from_mysql_pwd(
    mariadb_server: MariaDBServer, dumped: Dumped, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MYSQL_PWD", mariadb_server.password)
    context = job()
    url = mariadb_server.url(dumped.db, password=False)
    anyio.run(dump_to, MySQLFactory().open(url, {}), tmp_path / "d.sql", context)
    assert context.metadata["binlog_file"] == dumped.metadata["binlog_file"]


def test_cancelled_dump_kills_the_tool(mariadb_server: MariaDBServer, dumped: Dumped) -> None:
    async def main() -> None:
        source = MySQLFactory().open(mariadb_server.url(dumped.db), {})
        with anyio.CancelScope() as scope:
            async with source.dump(job()) as chunks:
                async for _chunk in chunks:
                    assert dump_children()
                    scope.cancel()
                    await anyio.sleep(1)

    anyio.run(main)
    assert dump_children() == []


def test_dump_of_an_unreachable_server_fails_quickly(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    source = MySQLFactory().open(f"mysql://u:pw@127.0.0.1:{closed_port}/db", {})
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"cannot connect to MySQL at u@127\.0\.0\.1:\d+/db") as info:
        anyio.run(dump_to, source, tmp_path / "x.sql", job())
    assert time.monotonic() - started < 5
    assert "\n" not in str(info.value)


def test_dump_with_a_wrong_password_fails_without_revealing_it(mariadb_server: MariaDBServer, tmp_path: Path) -> None:
    url = f"mysql://{mariadb_server.user}:WrongSecret42@{mariadb_server.host}:{mariadb_server.port}/mysql"
    started = time.monotonic()
    with pytest.raises(SourceError, match="Access denied") as info:
        anyio.run(dump_to, MySQLFactory().open(url, {}), tmp_path / "x.sql", job())
    assert time.monotonic() - started < 5
    assert "WrongSecret42" not in str(info.value)
    assert not (tmp_path / "x.sql").exists()


def test_dump_of_an_unknown_database_fails(mariadb_server: MariaDBServer, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="Unknown database"):
        anyio.run(dump_to, MySQLFactory().open(mariadb_server.url("no_such_db"), {}), tmp_path / "x.sql", job())


# --- restore ----------------------------------------------------------------------------------------


def test_restore_into_a_new_database_gives_identical_content(mariadb_server: MariaDBServer, dumped: Dumped) -> None:
    target = mariadb_server.unique_name("restored")
    anyio.run(restore_from, mariadb_server.url(target), dumped.path)
    try:
        assert fingerprints(mariadb_server, target) == dumped.fingerprints
        assert fingerprints(mariadb_server, target)["blobs"][2] == 4
        assert schema_objects(mariadb_server, target) == dumped.objects
        assert leftovers(mariadb_server) == []
    finally:
        mariadb_server.drop_database(target)


def test_restored_views_triggers_and_routines_work(mariadb_server: MariaDBServer, dumped: Dumped) -> None:
    target = mariadb_server.unique_name("restored")
    anyio.run(restore_from, mariadb_server.url(target), dumped.path)
    try:
        assert mariadb_server.execute("SELECT COUNT(*) FROM `v_on_view`", database=target) == [(200,)]
        assert mariadb_server.execute("SELECT `c` FROM `a view on a view on a view`", database=target) == [(200,)]
        assert mariadb_server.execute("SELECT `twice`(21)", database=target) == [(42,)]
        mariadb_server.execute("INSERT INTO `child` VALUES (5000, 1, 'shout')", database=target)
        assert mariadb_server.execute("SELECT `note` FROM `child` WHERE `id` = 5000", database=target) == [("SHOUT",)]
        with pytest.raises(Exception, match="foreign key constraint fails"):
            mariadb_server.execute("INSERT INTO `child` VALUES (5001, 999999, NULL)", database=target)
    finally:
        mariadb_server.drop_database(target)


def test_restore_into_an_existing_empty_database(mariadb_server: MariaDBServer, dumped: Dumped) -> None:
    target = mariadb_server.create_database(mariadb_server.unique_name("empty"))
    try:
        anyio.run(restore_from, mariadb_server.url(target), dumped.path)
        assert fingerprints(mariadb_server, target) == dumped.fingerprints
    finally:
        mariadb_server.drop_database(target)


def test_restore_refuses_a_non_empty_target_without_force(mariadb_server: MariaDBServer, dumped: Dumped) -> None:
    target = mariadb_server.create_database(mariadb_server.unique_name("busy"))
    try:
        mariadb_server.execute("CREATE TABLE `keep` (`id` INT PRIMARY KEY)", database=target)
        with pytest.raises(SourceError, match=r"not empty.*--force"):
            anyio.run(restore_from, mariadb_server.url(target), dumped.path)
        assert list(fingerprints(mariadb_server, target)) == ["keep"]
        assert leftovers(mariadb_server) == []
    finally:
        mariadb_server.drop_database(target)


def existing_target(server: MariaDBServer) -> str:
    """A database with its own tables, FK, view, trigger and routine, some named like the backup's."""
    target = server.create_database(server.unique_name("old"))
    for sql in (
        "CREATE TABLE `parent` (`id` INT PRIMARY KEY, `old` TEXT)",
        "CREATE TABLE `only_old` (`id` INT PRIMARY KEY, `p` INT, "
        "CONSTRAINT `child_parent` FOREIGN KEY (`p`) REFERENCES `parent` (`id`))",
        "INSERT INTO `parent` VALUES (1, 'old row'), (2, NULL)",
        "INSERT INTO `only_old` VALUES (1, 1)",
        "CREATE VIEW `children per parent` AS SELECT 1 AS `x`",
        "CREATE TRIGGER `child_note` BEFORE INSERT ON `only_old` FOR EACH ROW SET NEW.`p` = 1",
        "CREATE PROCEDURE `count children`() SELECT 0",
    ):
        server.execute(sql, database=target)
    return target


def test_restore_with_force_replaces_the_target_content(mariadb_server: MariaDBServer, dumped: Dumped) -> None:
    target = existing_target(mariadb_server)
    try:
        anyio.run(lambda: restore_from(mariadb_server.url(target), dumped.path, force="true"))
        assert fingerprints(mariadb_server, target) == dumped.fingerprints
        assert schema_objects(mariadb_server, target) == dumped.objects
        assert leftovers(mariadb_server) == []
    finally:
        mariadb_server.drop_database(target)


def test_restore_whose_data_fails_midway_leaves_the_target_untouched(
    mariadb_server: MariaDBServer, dumped: Dumped
) -> None:
    target = existing_target(mariadb_server)
    before = (fingerprints(mariadb_server, target), schema_objects(mariadb_server, target))
    source = MySQLFactory().open(mariadb_server.url(target), {})
    try:
        with pytest.raises(IntegrityError, match="tampered"):
            anyio.run(source.restore, failing_after(dumped.path, 2 * 1024 * 1024), job(force="true"))
        assert (fingerprints(mariadb_server, target), schema_objects(mariadb_server, target)) == before
        assert leftovers(mariadb_server) == []
    finally:
        mariadb_server.drop_database(target)


def test_restore_whose_data_fails_midway_creates_no_target(mariadb_server: MariaDBServer, dumped: Dumped) -> None:
    target = mariadb_server.unique_name("never")
    source = MySQLFactory().open(mariadb_server.url(target), {})
    with pytest.raises(IntegrityError):
        anyio.run(source.restore, failing_after(dumped.path, CHUNK_SIZE), job())
    assert not mariadb_server.database_exists(target)
    assert leftovers(mariadb_server) == []


def test_restore_of_invalid_sql_fails_with_the_client_error(mariadb_server: MariaDBServer, tmp_path: Path) -> None:
    target = mariadb_server.unique_name("bad")
    path = tmp_path / "bad.sql"
    path.write_bytes(
        b"CREATE TABLE `ok` (`id` INT PRIMARY KEY);\nINSERT INTO `ok` VALUES (1);\nCREATE TABLE broken (;\n"
    )
    with pytest.raises(SourceError, match=r"ERROR 1064 .* at line 3"):
        anyio.run(restore_from, mariadb_server.url(target), path)
    assert not mariadb_server.database_exists(target)
    assert leftovers(mariadb_server) == []


def test_restore_whose_client_fails_early_in_a_large_stream_reports_the_client_error(
    mariadb_server: MariaDBServer, dumped: Dumped, tmp_path: Path
) -> None:
    target = mariadb_server.unique_name("bad")
    path = tmp_path / "bad.sql"
    path.write_bytes(b"SELECT * FROM `no such table`;\n" + dumped.path.read_bytes())
    with pytest.raises(SourceError, match=r"ERROR 1146 .* at line 1: Table .* doesn't exist"):
        anyio.run(restore_from, mariadb_server.url(target), path)
    assert not mariadb_server.database_exists(target)
    assert leftovers(mariadb_server) == []


def test_restore_to_an_unreachable_server_fails_quickly(dumped: Dumped) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(SourceError, match="cannot connect"):
        anyio.run(restore_from, f"mysql://u:pw@127.0.0.1:{closed_port}/db", dumped.path)
    assert time.monotonic() - started < 5


def test_a_dump_tool_that_cannot_start_fails_with_one_line(
    mariadb_server: MariaDBServer, dumped: Dumped, tmp_path: Path
) -> None:
    tool = tmp_path / "broken-dump"
    tool.write_text("#!/nonexistent/interpreter\n")
    tool.chmod(0o755)

    async def main() -> None:
        source = MySQLFactory().open(mariadb_server.url(dumped.db), {"dump_tool": str(tool)})
        async with source.dump(job()) as chunks:
            async for _ in chunks:
                pass

    with pytest.raises(SourceError, match=r"cannot start .*broken-dump"):
        anyio.run(main)
