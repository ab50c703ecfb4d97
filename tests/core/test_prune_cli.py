"""``backstream prune``: the retention policy applied to a real repository from the command line.

Dry runs explain every decision; a real run deletes under the exclusive lock and ``list`` reflects it.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from fixtures.verify_cli import cli, cli_json, make_env, small_sqlite


@pytest.fixture
def three(tmp_path: Path) -> tuple[dict[str, str], str, list[str]]:
    """A repository with three backups of one database, oldest first."""
    env = make_env(tmp_path)
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=env)
    source = f"sqlite://{small_sqlite(tmp_path / 'source.db')}"
    ids = [cli_json("backup", source, "--repo", repo, env=env)["backup_id"] for _ in range(3)]
    return env, repo, ids


def test_dry_run_explains_each_decision_and_deletes_nothing(three: tuple[dict[str, str], str, list[str]]) -> None:
    env, repo, ids = three
    out = cli("prune", "--repo", repo, "--keep-last", "2", "--dry-run", env=env).stdout.splitlines()
    lines = {backup_id: next(line for line in out if backup_id in line) for backup_id in ids}
    assert lines[ids[2]].startswith("keep") and "newest complete backup; within the last 2" in lines[ids[2]]
    assert lines[ids[1]].startswith("keep") and "within the last 2" in lines[ids[1]]
    assert lines[ids[0]].startswith("would delete") and "matched no rule" in lines[ids[0]]
    assert out[-1] == "2 kept, 1 to delete (dry run)"
    assert [b["backup_id"] for b in cli_json("list", "--repo", repo, env=env)] == ids


def test_dry_run_json_lists_every_backup_with_reasons(three: tuple[dict[str, str], str, list[str]]) -> None:
    env, repo, ids = three
    result = cli_json("prune", "--repo", repo, "--keep-daily", "1", "--dry-run", env=env)
    decisions = {d["backup_id"]: d for d in result["decisions"]}
    assert decisions[ids[2]]["keep"] is True
    assert "daily 1/1" in decisions[ids[2]]["reasons"]
    assert [decisions[i]["keep"] for i in ids[:2]] == [False, False]


def test_prune_deletes_and_list_reflects_it(three: tuple[dict[str, str], str, list[str]]) -> None:
    env, repo, ids = three
    result = cli("prune", "--repo", repo, "--keep-last", "1", env=env)
    assert result.stdout.splitlines()[-1] == "1 kept, 2 deleted"
    assert [b["backup_id"] for b in cli_json("list", "--repo", repo, env=env)] == [ids[2]]
    assert not [p for p in Path(repo, "backups", ids[0]).rglob("*") if p.is_file()]
    assert cli("check", "--repo", repo, env=env).returncode == 0


def test_prune_without_a_policy_is_a_one_line_error(three: tuple[dict[str, str], str, list[str]]) -> None:
    env, repo, _ = three
    result = cli("prune", "--repo", repo, env=env, expect=2)
    assert result.stderr.strip().count("\n") == 0
    assert "needs at least one rule" in result.stderr


def test_prune_waits_for_no_one_while_a_backup_holds_the_lock(three: tuple[dict[str, str], str, list[str]]) -> None:
    env, repo, ids = three
    now = "2099-01-01T00:00:00.000000Z"  # a heartbeat from the future never expires during the test
    Path(repo, "locks", "live.json").write_text(
        json.dumps(
            {
                "format": "backstream-lock",
                "lock_id": "live",
                "operation": "backup",
                "exclusive": False,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started_at": now,
                "heartbeat_at": now,
                "stale_after": 300.0,
            }
        )
    )
    result = cli("prune", "--repo", repo, "--keep-last", "1", env=env, expect=None)
    assert result.returncode != 0
    assert [b["backup_id"] for b in cli_json("list", "--repo", repo, env=env)] == ids
