"""Verification of SQLite backups: drills from the CLI (recorded, shown by list/show), ``restore --verify``,
and the comprehensive checks catching a changed value and a dropped index in a restored database.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import anyio
import pytest
from backstream import Plugins
from backstream.jobs import backup
from backstream.repository import Manifest
from backstream.verify.catalog import CatalogOptions
from backstream.verify.drill import verify_target
from fixtures.verify_cli import cli, cli_json, make_env, small_sqlite


@pytest.fixture
def made(tmp_path: Path) -> tuple[dict[str, str], str, str]:
    """An environment, a repository and the id of one backup of a small database."""
    env = make_env(tmp_path)
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=env)
    source = f"sqlite://{small_sqlite(tmp_path / 'source.db')}"
    return env, repo, cli_json("backup", source, "--repo", repo, env=env)["backup_id"]


def manifest_of(repo: str, backup_id: str) -> Manifest:
    path = Path(repo, "backups", backup_id, "manifest.json")
    return Manifest.from_json(path.read_bytes(), where=str(path))


def restored(env: dict[str, str], repo: str, backup_id: str, target: Path) -> str:
    url = f"sqlite://{target}"
    cli("restore", backup_id, "--repo", repo, "--to", url, env=env)
    return url


def checks(manifest: Manifest, url: str, level: str = "comprehensive") -> dict[str, tuple[str, str]]:
    async def run() -> dict[str, tuple[str, str]]:
        results = await verify_target(Plugins.load(), manifest, url, level)
        return {r.name: (r.status, r.detail) for r in results}

    return anyio.run(run)


def test_verify_latest_passes_and_is_recorded_for_list_and_show(made: tuple[dict[str, str], str, str]) -> None:
    env, repo, backup_id = made
    drill = cli_json("verify", "latest", "--repo", repo, "--level", "comprehensive", env=env)
    assert drill["status"] == "pass"
    assert drill["failed"] == 0 and drill["pass_rate"] == 1.0
    assert {"restore", "checksum customer", "indexes customer", "integrity_check"} <= {
        c["name"] for c in drill["checks"]
    }
    listed = cli_json("list", "--repo", repo, env=env)[0]["last_verified"]
    assert listed["status"] == "pass" and listed["restore_seconds"] >= 0
    shown = cli("show", backup_id, "--repo", repo, env=env).stdout
    assert "verified     pass " in shown and "comprehensive" in shown
    assert len(list(Path(repo, "backups", backup_id, "drills").glob("*.json"))) == 1
    assert not list(Path(env["TMPDIR"]).glob("backstream-verify-*"))  # the scratch is gone


def test_verify_prints_a_readable_table(made: tuple[dict[str, str], str, str]) -> None:
    env, repo, _ = made
    out = cli("verify", "latest", "--repo", repo, env=env).stdout
    assert "rows customer" in out and "PASS" in out
    assert "PASS: " in out.splitlines()[-1] and "level standard" in out


def test_the_comprehensive_level_detects_one_changed_value(
    made: tuple[dict[str, str], str, str], tmp_path: Path
) -> None:
    env, repo, backup_id = made
    url = restored(env, repo, backup_id, tmp_path / "restored.db")
    with sqlite3.connect(tmp_path / "restored.db") as conn:
        conn.execute("UPDATE customer SET balance = 99 WHERE id = 7")
    conn.close()
    results = checks(manifest_of(repo, backup_id), url)
    assert results["checksum customer"][0] == "fail"
    assert results["rows customer"][0] == "pass"
    assert results["checksum orders"][0] == "pass"


def test_the_comprehensive_level_detects_a_dropped_index(made: tuple[dict[str, str], str, str], tmp_path: Path) -> None:
    env, repo, backup_id = made
    url = restored(env, repo, backup_id, tmp_path / "restored.db")
    with sqlite3.connect(tmp_path / "restored.db") as conn:
        conn.execute("DROP INDEX customer_name")
    conn.close()
    results = checks(manifest_of(repo, backup_id), url)
    assert results["indexes customer"] == (
        "fail",
        "indexes differ: missing customer_name CREATE INDEX customer_name ON customer (name)",
    )
    assert results["checksum customer"][0] == "pass"


def test_the_standard_level_checks_rows_and_columns_but_not_content(
    made: tuple[dict[str, str], str, str], tmp_path: Path
) -> None:
    env, repo, backup_id = made
    url = restored(env, repo, backup_id, tmp_path / "restored.db")
    with sqlite3.connect(tmp_path / "restored.db") as conn:
        conn.execute("DELETE FROM orders WHERE id = 1")
    conn.close()
    results = checks(manifest_of(repo, backup_id), url, "standard")
    assert results["rows orders"] == ("fail", "49 rows, expected 50")
    assert results["columns customer"][0] == "pass"
    assert not any(name.startswith(("checksum", "indexes")) for name in results)


def test_restore_with_verify_reports_and_exits_zero_when_it_passes(
    made: tuple[dict[str, str], str, str], tmp_path: Path
) -> None:
    env, repo, backup_id = made
    target = f"sqlite://{tmp_path / 'restored.db'}"
    result = cli_json("restore", backup_id, "--repo", repo, "--to", target, "--verify", "comprehensive", env=env)
    assert result["verification"]["status"] == "pass"
    assert result["verification"]["failed"] == 0


def test_a_drill_of_a_corrupted_backup_fails_and_records_the_failure(made: tuple[dict[str, str], str, str]) -> None:
    env, repo, backup_id = made
    stored = next(Path(repo, "backups", backup_id, "data").iterdir())
    data = bytearray(stored.read_bytes())
    data[-5] ^= 0xFF
    stored.write_bytes(bytes(data))
    drill = cli_json("verify", backup_id, "--repo", repo, env=env, expect=1)
    assert drill["checks"][0]["name"] == "restore" and drill["checks"][0]["status"] == "fail"
    assert drill["restore_seconds"] is None
    assert cli_json("list", "--repo", repo, env=env)[0]["last_verified"]["status"] == "fail"


def test_content_checksums_are_skipped_above_the_row_limit(tmp_path: Path) -> None:
    source = f"sqlite://{small_sqlite(tmp_path / 'source.db')}"
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=make_env(tmp_path))

    async def run() -> Manifest:
        return await backup(source, repo=repo, catalog=CatalogOptions(max_rows=10))

    manifest = anyio.run(run)
    assert manifest.catalog is not None
    customer = manifest.catalog["tables"]["customer"]
    assert customer["checksum"] is None and customer["rows"] == 50
    assert "above the checksum limit of 10" in customer["checksum_skipped"]
    url = f"sqlite://{tmp_path / 'source.db'}"
    assert checks(manifest, url)["checksum customer"] == ("skip", customer["checksum_skipped"])


def test_a_backup_with_the_catalog_off_records_none_and_checks_skip(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    source = f"sqlite://{small_sqlite(tmp_path / 'source.db')}"
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=env)
    backup_id = cli_json("backup", source, "--repo", repo, "--catalog", "off", env=env)["backup_id"]
    stored = json.loads(Path(repo, "backups", backup_id, "manifest.json").read_text())
    assert stored["catalog"] is None
    results = checks(manifest_of(repo, backup_id), source)
    assert results["table count"] == ("skip", "no catalog was recorded at backup time")


def test_checks_accept_a_url_with_an_absolute_path_after_three_slashes(tmp_path: Path) -> None:
    database = tmp_path / "four.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE t (x INTEGER)")
    checks = Plugins.load(autoload=False).checks().get("sqlite")
    described = anyio.run(lambda: checks.inspect(f"sqlite:///{database}", level="quick", max_rows=None))
    assert described  # sqlite:////tmp/... once failed with "invalid uri authority: tmp"
