"""Point-in-time restore of MariaDB from a logical backup plus archived binlogs, through the CLI.

Three batches of rows are committed in different seconds, binlogs are flushed and archived, and a restore
to a moment between batch 2 and 3 must hold exactly batches 1 and 2.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from backstream import Plugins
from backstream.errors import ConfigError, RepositoryError
from backstream.jobs import open_repository
from backstream.repository import ObjectRecord
from backstream_plugins.mysql.binlog import BinlogRecord, parse_target_time, plan_replay, scan_events, stop_datetime
from backstream_plugins.mysql.binlog.prune import prune_binlogs
from fixtures.mariadb import MariaDBServer

FAST_KDF = ["--kdf-param", "t=1", "--kdf-param", "m=1024", "--kdf-param", "p=1"]


def cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "backstream.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"backstream {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def make_env(directory: Path) -> dict[str, str]:
    scratch = directory / "tmp"
    scratch.mkdir(exist_ok=True)
    environment = {k: v for k, v in os.environ.items() if k not in ("BACKSTREAM_REPO", "BACKSTREAM_PASSPHRASE")}
    environment.update(BACKSTREAM_AUDIT_LOG=str(directory / "audit.log"), TMPDIR=str(scratch))
    return environment


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("backstream: error: ")
    return lines[0]


def batch(server: MariaDBServer, db: str, number: int) -> None:
    conn = server.connect(db)
    try:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO items (batch, label) VALUES (%s, %s)", [(number, f"b{number}-{i}") for i in range(5)]
            )
            cur.execute("UPDATE counter SET n = n + 1")
    finally:
        conn.close()
    server.execute("FLUSH BINARY LOGS")


def batches_in(server: MariaDBServer, db: str) -> list[tuple[int, int]]:
    return [
        (int(b), int(c))
        for b, c in server.execute("SELECT batch, COUNT(*) FROM items GROUP BY batch ORDER BY batch", database=db)
    ]


@dataclass(frozen=True)
class Scenario:
    server: MariaDBServer
    env: dict[str, str]
    repo: Path
    source_db: str
    backup_id: str
    target: datetime  # a whole second after batch 2 and at or before batch 3
    archive_output: str
    directory: Path


@pytest.fixture(scope="module")
def scenario(mariadb_server: MariaDBServer, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    server = mariadb_server
    directory = tmp_path_factory.mktemp("pitr-mysql")
    env = make_env(directory)
    repo = directory / "repo"
    cli("init", "--repo", str(repo), env=env)
    db = server.create_database(server.unique_name("pitr"))
    server.execute("CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, batch INT, label TEXT)", database=db)
    server.execute("CREATE TABLE counter (n INT)", database=db)
    server.execute("INSERT INTO counter VALUES (0)", database=db)
    backup_id = cli("backup", server.url(db), "--repo", str(repo), env=env).stdout.strip()
    time.sleep(1.1)  # the backup finishes in an earlier second than batch 1
    batch(server, db, 1)
    time.sleep(1.1)
    batch(server, db, 2)
    boundary = int(time.time()) + 1
    time.sleep(boundary - time.time() + 0.2)
    batch(server, db, 3)
    time.sleep(1.1)
    server.execute("FLUSH BINARY LOGS")  # a binlog closed a second after batch 3: the archive reaches past it
    archived = cli("binlog-archive", server.url(), "--repo", str(repo), env=env).stdout
    return Scenario(
        server=server,
        env=env,
        repo=repo,
        source_db=db,
        backup_id=backup_id,
        target=datetime.fromtimestamp(boundary, UTC),
        archive_output=archived,
        directory=directory,
    )


def copy_repo(scenario: Scenario, name: str) -> Path:
    copy = scenario.directory / name
    shutil.copytree(scenario.repo, copy)
    return copy


def records(repo: Path) -> list[BinlogRecord]:
    found = []
    for path in sorted(repo.glob("binlog/*/*.json")):
        found.append(BinlogRecord.from_json(path.read_bytes(), where=str(path)))
    return found


# --- the end-to-end scenario ---------------------------------------------------------------------------


def test_restore_to_a_time_between_batch_two_and_three_holds_exactly_batches_one_and_two(
    scenario: Scenario,
) -> None:
    server = scenario.server
    assert batches_in(server, scenario.source_db) == [(1, 5), (2, 5), (3, 5)]
    target_db = server.unique_name("pitr_target")
    stamp = scenario.target.strftime("%Y-%m-%d %H:%M:%S+00")
    out = cli(
        "restore",
        "latest",
        "--repo",
        str(scenario.repo),
        "--to",
        server.url(target_db),
        "--target-time",
        stamp,
        "--json",
        env=scenario.env,
    ).stdout
    result = json.loads(out)
    assert result["backup_id"] == scenario.backup_id
    assert result["mode"] == "binlog-replay"
    assert batches_in(server, target_db) == [(1, 5), (2, 5)]
    assert server.execute("SELECT n FROM counter", database=target_db) == [(2,)]
    assert not [d for d in server.databases() if "__backstream_" in d]


def test_a_target_given_in_another_time_zone_means_the_same_instant_whatever_the_local_zone(
    scenario: Scenario,
) -> None:
    """mariadb-binlog reads --stop-datetime in its local time zone: backstream must not depend on it."""
    server = scenario.server
    target_db = server.unique_name("pitr_tz")
    stamp = (scenario.target + timedelta(hours=5, minutes=30)).strftime("%Y-%m-%dT%H:%M:%S+05:30")
    cli(
        "restore",
        scenario.backup_id,
        "--repo",
        str(scenario.repo),
        "--to",
        server.url(target_db),
        "--target-time",
        stamp,
        env={**scenario.env, "TZ": "America/New_York"},
    )
    assert batches_in(server, target_db) == [(1, 5), (2, 5)]


def test_a_target_after_batch_three_replays_all_three_batches_also_without_binlogging_the_replay(
    scenario: Scenario,
) -> None:
    server = scenario.server
    target_db = server.unique_name("pitr_all")
    records_ = records(scenario.repo)
    newest = max(r.last_event for r in records_ if r.last_event is not None)
    cli(
        "restore",
        "latest",
        "--repo",
        str(scenario.repo),
        "--to",
        server.url(target_db),
        "--target-time",
        newest.isoformat(),
        "-o",
        "replay_log_bin=false",
        env=scenario.env,
    )
    assert batches_in(server, target_db) == [(1, 5), (2, 5), (3, 5)]


# --- archiving ------------------------------------------------------------------------------------------


def test_archive_records_each_closed_binlog_with_its_event_times(scenario: Scenario) -> None:
    current = scenario.server.master_status()[0]
    found = records(scenario.repo)
    names = [r.name for r in found]
    assert current not in names
    assert names and all(r.first_event is not None and r.last_event is not None for r in found)
    assert all(r.first_event <= r.last_event for r in found if r.first_event and r.last_event)
    assert all((scenario.repo / r.object.path).is_file() and r.object.path.endswith(".zst") for r in found)
    assert all(f"archived {n}" in scenario.archive_output for n in names)


def test_archiving_again_skips_identical_files(scenario: Scenario) -> None:
    repo = copy_repo(scenario, "again")
    before = {p: p.stat().st_mtime_ns for p in repo.glob("binlog/*/*")}
    out = json.loads(
        cli("binlog-archive", scenario.server.url(), "--repo", str(repo), "--json", env=scenario.env).stdout
    )
    assert out["archived"] == [] or all(
        name not in {r.name for r in records(scenario.repo)} for name in out["archived"]
    )
    assert set(out["skipped"]) >= {r.name for r in records(scenario.repo)}
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items())


def test_reading_the_datadir_stores_the_same_bytes_as_fetching_from_the_server(scenario: Scenario) -> None:
    repo = copy_repo(scenario, "datadir")
    shutil.rmtree(repo / "binlog")
    cli(
        "binlog-archive",
        scenario.server.url(),
        "--repo",
        str(repo),
        "--binlog-dir",
        scenario.server.datadir,
        env=scenario.env,
    )
    fetched = {r.name: r.plaintext_sha256 for r in records(scenario.repo)}
    read = {r.name: r.plaintext_sha256 for r in records(repo)}
    assert fetched.items() <= read.items()
    again = json.loads(
        cli(
            "binlog-archive",
            scenario.server.url(),
            "--repo",
            str(repo),
            "--binlog-dir",
            scenario.server.datadir,
            "--json",
            env=scenario.env,
        ).stdout
    )
    assert again["archived"] == []


def test_a_different_file_under_an_archived_name_is_refused_loudly(scenario: Scenario) -> None:
    repo = copy_repo(scenario, "conflict")
    record_file = sorted(repo.glob("binlog/*/*.json"))[-1]
    document = json.loads(record_file.read_text())
    document["plaintext_size"] += 1
    record_file.write_text(json.dumps(document))
    line = one_line_error(
        cli("binlog-archive", scenario.server.url(), "--repo", str(repo), env=scenario.env, check=False)
    )
    assert document["name"] in line and "refusing to overwrite" in line


def test_follow_with_max_rounds_archives_newly_closed_binlogs(scenario: Scenario) -> None:
    repo = copy_repo(scenario, "follow")
    closed_now = scenario.server.master_status()[0]
    scenario.server.execute("FLUSH BINARY LOGS")
    out = cli(
        "binlog-archive",
        scenario.server.url(),
        "--repo",
        str(repo),
        "--follow",
        "--interval",
        "0.2",
        "--max-rounds",
        "2",
        "--json",
        env=scenario.env,
    ).stdout
    rounds = [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00")]
    assert len(rounds) == 2
    assert closed_now in rounds[0]["archived"] or closed_now in {r.name for r in records(repo)}
    assert rounds[1]["archived"] == []


def test_encrypted_archive_and_replay(scenario: Scenario) -> None:
    server = scenario.server
    env = {**scenario.env, "BACKSTREAM_PASSPHRASE": "correct horse battery staple"}
    repo = copy_repo(scenario, "encrypted")
    shutil.rmtree(repo / "binlog")
    cli("binlog-archive", server.url(), "--repo", str(repo), "--encrypt", "passphrase", *FAST_KDF, env=env)
    found = records(repo)
    assert found and all(r.object.cipher for r in found)
    assert all(b"INSERT INTO items" not in (repo / r.object.path).read_bytes() for r in found)
    target_db = server.unique_name("pitr_enc")
    cli(
        "restore",
        "latest",
        "--repo",
        str(repo),
        "--to",
        server.url(target_db),
        "--target-time",
        scenario.target.isoformat(),
        env=env,
    )
    assert batches_in(server, target_db) == [(1, 5), (2, 5)]


# --- failures -------------------------------------------------------------------------------------------


def test_a_missing_binlog_in_the_chain_is_named_and_the_target_is_untouched(scenario: Scenario) -> None:
    server = scenario.server
    repo = copy_repo(scenario, "gap")
    plan = plan_replay(
        records(repo),
        server_id=1,
        start_file=json.loads((repo / "backups" / scenario.backup_id / "manifest.json").read_text())["source"][
            "metadata"
        ]["binlog_file"],
        start_position=4,
        target=scenario.target,
    )
    assert len(plan.files) >= 3
    missing = plan.files[1]
    (repo / missing.object.path).unlink()
    (repo / f"binlog/1/{missing.name}.json").unlink()
    target_db = server.create_database(server.unique_name("pitr_keep"))
    server.execute("CREATE TABLE precious (v TEXT)", database=target_db)
    server.execute("INSERT INTO precious VALUES ('still here')", database=target_db)
    line = one_line_error(
        cli(
            "restore",
            "latest",
            "--repo",
            str(repo),
            "--to",
            server.url(target_db),
            "--force",
            "--target-time",
            scenario.target.isoformat(),
            env=scenario.env,
            check=False,
        )
    )
    assert missing.name in line and "missing" in line
    assert server.execute("SELECT v FROM precious", database=target_db) == [("still here",)]
    assert server.execute("SHOW TABLES", database=target_db) == [("precious",)]
    assert not [d for d in server.databases() if "__backstream_" in d]


def test_a_target_beyond_the_archived_binlogs_is_refused(scenario: Scenario) -> None:
    server = scenario.server
    target_db = server.unique_name("pitr_future")
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    line = one_line_error(
        cli(
            "restore",
            "latest",
            "--repo",
            str(scenario.repo),
            "--to",
            server.url(target_db),
            "--target-time",
            future,
            env=scenario.env,
            check=False,
        )
    )
    assert "before the target" in line
    assert not server.database_exists(target_db)


def test_a_target_time_without_an_offset_is_refused(scenario: Scenario) -> None:
    line = one_line_error(
        cli(
            "restore",
            "latest",
            "--repo",
            str(scenario.repo),
            "--to",
            scenario.server.url("x"),
            "--target-time",
            "2026-11-25 14:30:00",
            env=scenario.env,
            check=False,
        )
    )
    assert "UTC offset" in line


def test_a_failing_replay_reports_how_far_it_got_and_leaves_the_target_untouched(scenario: Scenario) -> None:
    server = scenario.server
    target_db = server.create_database(server.unique_name("pitr_fail"))
    server.execute("CREATE TABLE precious (v TEXT)", database=target_db)
    # Break the replay: start from the beginning of the backup's binlog, so that the CREATE TABLE the dump
    # already holds is replayed again and fails.
    repo = copy_repo(scenario, "broken")
    manifest_path = repo / "backups" / scenario.backup_id / "manifest.json"
    document = json.loads(manifest_path.read_text())
    document["source"]["metadata"]["binlog_position"] = 4
    manifest_path.write_text(json.dumps(document))
    first_file = document["source"]["metadata"]["binlog_file"]
    line = one_line_error(
        cli(
            "restore",
            "latest",
            "--repo",
            str(repo),
            "--to",
            server.url(target_db),
            "--force",
            "--target-time",
            scenario.target.isoformat(),
            env=scenario.env,
            check=False,
        )
    )
    assert "was not changed" in line and "ERROR 10" in line
    assert f"failed in {first_file} at position " in line
    assert server.execute("SHOW TABLES", database=target_db) == [("precious",)]
    assert not [d for d in server.databases() if "__backstream_" in d]


def test_pruning_binlogs_keeps_the_window_of_kept_backups_and_deletes_older_files(scenario: Scenario) -> None:
    repo = copy_repo(scenario, "prune")
    names = sorted(r.name for r in records(repo))
    assert len(names) >= 3

    async def work() -> list[str]:
        repository = await open_repository(Plugins.load(), str(repo))
        manifest = await repository.manifest(scenario.backup_id)
        metadata = {**manifest.source.metadata, "binlog_file": names[2]}
        later = dataclasses.replace(manifest, source=dataclasses.replace(manifest.source, metadata=metadata))
        decisions = await prune_binlogs(repository, [later])
        return [d.name for d in decisions if not d.decision.keep]

    deleted = anyio.run(work)
    assert deleted == names[:2]
    assert sorted(r.name for r in records(repo)) == names[2:]
    assert not any((repo / "binlog" / "1" / f"{name}.zst").exists() for name in names[:2])


# --- pure parts -----------------------------------------------------------------------------------------


def test_stop_datetime_rounds_a_fractional_target_up_to_the_next_second() -> None:
    moment = datetime(2026, 11, 25, 14, 30, 0, 500000, tzinfo=UTC)
    assert stop_datetime(moment) == datetime(2026, 11, 25, 14, 30, 1, tzinfo=UTC)
    assert stop_datetime(moment.replace(microsecond=0)) == moment.replace(microsecond=0)


def test_parse_target_time_needs_an_offset() -> None:
    assert parse_target_time("2026-11-25 14:30:00+01:00") == datetime(2026, 11, 25, 13, 30, tzinfo=UTC)
    with pytest.raises(ConfigError, match="UTC offset"):
        parse_target_time("2026-11-25 14:30:00")


def _record(name: str, first: int, last: int) -> BinlogRecord:
    base = datetime(2026, 11, 25, tzinfo=UTC)
    return BinlogRecord(
        server_id=1,
        object=ObjectRecord(
            name=name, path=f"binlog/1/{name}.zst", stored_size=1, stored_sha256="", plaintext_size=1, codec="zstd"
        ),
        plaintext_sha256="",
        first_event=base + timedelta(seconds=first),
        last_event=base + timedelta(seconds=last),
        archived_at=base,
    )


def test_plan_replay_takes_the_chain_up_to_the_file_reaching_the_target() -> None:
    chain = [_record(f"bin.00000{i}", i * 10, i * 10 + 9) for i in range(1, 6)]
    target = datetime(2026, 11, 25, tzinfo=UTC) + timedelta(seconds=35)
    plan = plan_replay(chain, server_id=1, start_file="bin.000002", start_position=400, target=target)
    assert [r.name for r in plan.files] == ["bin.000002", "bin.000003"]


def test_plan_replay_names_a_missing_file_in_the_chain() -> None:
    chain = [_record(f"bin.00000{i}", i * 10, i * 10 + 9) for i in (1, 2, 4, 5)]
    target = datetime(2026, 11, 25, tzinfo=UTC) + timedelta(seconds=45)
    with pytest.raises(RepositoryError, match=r"bin\.000003 .*missing"):
        plan_replay(chain, server_id=1, start_file="bin.000001", start_position=4, target=target)


def test_scan_events_reads_the_event_times_of_a_real_binlog(scenario: Scenario) -> None:
    datadir = Path(scenario.server.datadir)
    name = records(scenario.repo)[-1].name
    span = scan_events(str(datadir / name))
    assert span.events > 2 and span.first_event is not None and span.readable


# --- SQLite: backup-granular ----------------------------------------------------------------------------


def test_sqlite_target_time_restores_the_newest_backup_not_after_it(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=env)
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES ('first')")
    conn.close()
    cli("backup", f"sqlite://{db}", "--repo", repo, env=env)
    between = datetime.now(UTC)
    time.sleep(1.1)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO t VALUES ('second')")
    conn.close()
    cli("backup", f"sqlite://{db}", "--repo", repo, env=env)
    restored = tmp_path / "restored.db"
    out = json.loads(
        cli(
            "restore",
            "latest",
            "--repo",
            repo,
            "--to",
            f"sqlite://{restored}",
            "--target-time",
            between.isoformat(),
            "--json",
            env=env,
        ).stdout
    )
    assert out["mode"] == "backup-granular"
    conn = sqlite3.connect(restored)
    assert conn.execute("SELECT v FROM t").fetchall() == [("first",)]
    conn.close()
    early = (between - timedelta(days=1)).isoformat()
    line = one_line_error(
        cli(
            "restore",
            "latest",
            "--repo",
            repo,
            "--to",
            f"sqlite://{tmp_path / 'x.db'}",
            "--target-time",
            early,
            env=env,
            check=False,
        )
    )
    assert "finished at or before" in line


def test_check_covers_the_binlog_archive_and_catches_a_changed_byte(scenario: Scenario) -> None:
    repo = copy_repo(scenario, "checked")
    found = records(repo)
    healthy = json.loads(cli("check", "--repo", str(repo), "--read-data", "--json", env=scenario.env).stdout)
    assert healthy["ok"] and healthy["archived"] == len(found) > 0
    target = repo / found[-1].object.path
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 1
    target.write_bytes(bytes(raw))
    result = cli("check", "--repo", str(repo), "--json", env=scenario.env, check=False)
    assert result.returncode == 1
    problems = json.loads(result.stdout)["problems"]
    assert [(p["kind"], p["path"]) for p in problems] == [("sha256", found[-1].object.path)]
