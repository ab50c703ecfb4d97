"""Verification of PostgreSQL backups: a drill into a temporary database (with and without --scratch),
recorded and shown by ``list``; amcheck; a changed value and a dropped index caught at the comprehensive level.
Plain backups take rows and checksums off the dump itself; custom ones from a data-only dump after it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from backstream import Plugins
from backstream.repository import Manifest
from backstream.verify.drill import verify_target
from fixtures.postgres import PostgresServer
from fixtures.verify_cli import cli, cli_json, make_env

SCHEMA = """
CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL, balance numeric(10, 2), seen timestamptz);
CREATE INDEX customer_name ON customer (name);
CREATE TABLE orders (id serial PRIMARY KEY, customer int REFERENCES customer (id), note text, CHECK (id > 0));
INSERT INTO customer SELECT i, 'name ' || i, i * 1.5, '2026-01-01'::timestamptz + i * interval '1 hour'
  FROM generate_series(1, 200) i;
INSERT INTO orders (customer, note) SELECT 1 + i % 200, CASE WHEN i % 3 = 0 THEN NULL ELSE 'n' || i END
  FROM generate_series(1, 300) i;
CREATE SCHEMA "Größe ""Q"" x";
CREATE TABLE "Größe ""Q"" x"."Mixed.Case" ("Wert" text, b bytea);
INSERT INTO "Größe ""Q"" x"."Mixed.Case" VALUES (E'tab\\tnew\\nline \\\\. back\\\\slash', '\\x00ff'),
  (NULL, NULL), (E'\\\\.', ''), ('ümlaut', NULL);
CREATE TABLE empty_one (x int);
CREATE SCHEMA "a.b"; CREATE SCHEMA a;
CREATE TABLE "a.b".c (v int); CREATE TABLE a."b.c" (v int);
INSERT INTO "a.b".c VALUES (1); INSERT INTO a."b.c" VALUES (1), (2);
COMMENT ON INDEX customer_name IS E'reload with:\\nCOPY public.customer (id) FROM stdin;\\n\\\\.\\n';
CREATE TABLE "nl\nname" ("col\numn" int);
INSERT INTO "nl\nname" VALUES (1), (2);
CREATE TABLE measure (day date, v int) PARTITION BY RANGE (day);
CREATE TABLE measure_2026 PARTITION OF measure FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO measure SELECT '2026-01-01'::date + i % 300, i FROM generate_series(1, 500) i;
"""


@pytest.fixture
def source_db(postgres_server: PostgresServer) -> Iterator[str]:
    name = postgres_server.create_database(postgres_server.unique_name("verify"))
    with postgres_server.connect(name) as conn:
        conn.execute(SCHEMA)
    try:
        yield name
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(params=["plain", "custom"])
def made(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_server: PostgresServer, source_db: str
) -> tuple[dict[str, str], str, str]:
    env = make_env(tmp_path)
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=env)
    made = cli_json("backup", postgres_server.url(source_db), "--repo", repo, "--format", request.param, env=env)
    return env, repo, made["backup_id"]


def scratch_databases(server: PostgresServer) -> list[str]:
    with server.connect() as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'backstream_verify_%'").fetchall()
    return [r[0] for r in rows]


def test_verify_latest_with_a_scratch_url_passes_and_is_recorded(
    made: tuple[dict[str, str], str, str], postgres_server: PostgresServer
) -> None:
    env, repo, backup_id = made
    scratch = postgres_server.url("postgres")
    drill = cli_json("verify", "latest", "--repo", repo, "--scratch", scratch, "--level", "comprehensive", env=env)
    statuses = {c["name"]: c["status"] for c in drill["checks"]}
    assert drill["status"] == "pass", drill
    assert statuses["amcheck"] == "pass"
    assert statuses["checksum public.customer"] == "pass"
    assert statuses['checksum "Größe ""Q"" x"."Mixed.Case"'] == "pass"
    assert statuses["checksum public.empty_one"] == "pass"
    assert statuses['rows "a.b"."c"'] == statuses['rows "a"."b.c"'] == "pass"  # two tables, told apart
    assert statuses["checksum public.nl\nname"] == "pass"
    assert statuses["checksum public.measure"] == "pass"  # a partitioned parent: no COPY of its own
    assert statuses["constraints public.orders"] == "pass"
    listed = cli_json("list", "--repo", repo, env=env)[0]
    assert listed["backup_id"] == backup_id and listed["last_verified"]["status"] == "pass"
    assert scratch_databases(postgres_server) == []


def test_verify_defaults_to_a_temporary_database_on_the_source_server(
    made: tuple[dict[str, str], str, str], postgres_server: PostgresServer
) -> None:
    env, repo, _ = made
    env = {**env, "PGPASSWORD": postgres_server.password}  # the manifest keeps no password
    out = cli("verify", "latest", "--repo", repo, env=env).stdout
    assert out.splitlines()[-1].startswith("PASS: ")
    assert scratch_databases(postgres_server) == []


@pytest.fixture
def restored(
    made: tuple[dict[str, str], str, str], postgres_server: PostgresServer
) -> Iterator[tuple[Manifest, str, str]]:
    """The backup restored into a new database: (manifest, its URL, its name)."""
    env, repo, backup_id = made
    name = postgres_server.unique_name("restored")
    cli("restore", backup_id, "--repo", repo, "--to", postgres_server.url(name), env=env)
    path = Path(repo, "backups", backup_id, "manifest.json")
    try:
        yield Manifest.from_json(path.read_bytes(), where=str(path)), postgres_server.url(name), name
    finally:
        postgres_server.drop_database(name)


def comprehensive(manifest: Manifest, url: str) -> dict[str, tuple[str, str]]:
    async def run() -> dict[str, tuple[str, str]]:
        results = await verify_target(Plugins.load(), manifest, url, "comprehensive")
        return {r.name: (r.status, r.detail) for r in results}

    return anyio.run(run)


def test_a_catalog_recorded_before_dotted_names_were_quoted_still_verifies(
    restored: tuple[Manifest, str, str],
) -> None:
    manifest, url, _ = restored
    catalog = dict(manifest.catalog or {})
    assert catalog.pop("key_format") == 2
    legacy = catalog.pop("legacy_keys")
    assert legacy['"a.b"."c"'] == legacy['"a"."b.c"'] == "a.b.c"
    # the catalog as the old keys made it: dotted names unquoted, "a.b".c and a."b.c" as one
    catalog["tables"] = {legacy.get(key, key): info for key, info in catalog["tables"].items()}
    results = comprehensive(dataclasses.replace(manifest, catalog=catalog), url)
    assert results['checksum Größe "Q" x.Mixed.Case'][0] == "pass"
    assert results["table count"][0] == "pass"
    assert {status for status, _ in results.values()} <= {"pass", "skip"}, results


def test_the_comprehensive_level_detects_one_changed_value(
    restored: tuple[Manifest, str, str], postgres_server: PostgresServer
) -> None:
    manifest, url, name = restored
    with postgres_server.connect(name) as conn:
        conn.execute("UPDATE customer SET balance = 0 WHERE id = 42")
    results = comprehensive(manifest, url)
    assert results["checksum public.customer"][0] == "fail"
    assert results["rows public.customer"][0] == "pass"
    assert results["checksum public.orders"][0] == "pass"


def test_the_comprehensive_level_detects_a_dropped_index(
    restored: tuple[Manifest, str, str], postgres_server: PostgresServer
) -> None:
    manifest, url, name = restored
    with postgres_server.connect(name) as conn:
        conn.execute("DROP INDEX customer_name")
    results = comprehensive(manifest, url)
    status, detail = results["indexes public.customer"]
    assert status == "fail" and "missing customer_name" in detail
    assert results["amcheck"][0] == "pass"
    with postgres_server.connect(name) as conn:  # amcheck was removed again
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'").fetchone()[0] == 0


def test_the_catalog_holds_the_true_row_counts_and_a_dump_checksum_for_every_table(
    made: tuple[dict[str, str], str, str], postgres_server: PostgresServer, source_db: str
) -> None:
    _, repo, backup_id = made
    path = Path(repo, "backups", backup_id, "manifest.json")
    catalog = Manifest.from_json(path.read_bytes(), where=str(path)).catalog
    assert catalog is not None
    tables = catalog["tables"]
    with postgres_server.connect(source_db) as conn:
        names = {
            "public.customer": "public.customer",
            "public.orders": "public.orders",
            '"Größe ""Q"" x"."Mixed.Case"': '"Größe ""Q"" x"."Mixed.Case"',  # a dot in a name: quoted
            "public.empty_one": "public.empty_one",
            "public.measure": "public.measure",
            '"a.b"."c"': '"a.b".c',
            '"a"."b.c"': 'a."b.c"',
        }
        for key, name in names.items():
            assert tables[key]["rows"] == conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0], key
    assert tables['"a.b"."c"']["rows"] == 1 and tables['"a"."b.c"']["rows"] == 2  # two tables, not one
    assert tables["public.customer"]["checksum"].startswith("copy-sha256:")
    assert tables['"Größe ""Q"" x"."Mixed.Case"']["checksum"].startswith("copy-sha256:")
    assert tables["public.measure_2026"]["checksum"].startswith("copy-sha256:")
    assert tables["public.nl\nname"]["rows"] == 2 and tables["public.nl\nname"]["checksum"].startswith("copy-sha256:")
    assert len(tables["public.measure"]["checksum"]) == 32  # the parent: md5 over its rows, computed by the server
