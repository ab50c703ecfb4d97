"""Small truths of the reports: ``stats`` counts the WAL archive on its own line, and verify's
checksum lines show the hash, not just its method."""

from __future__ import annotations

import json
import os
from pathlib import Path

from backstream.verify.report import FAIL, PASS, compare
from fixtures.verify_cli import cli, cli_json, make_env, small_sqlite

SEGMENTS = ("000000010000000000000001", "000000010000000000000002")


def test_stats_shows_the_wal_archive_as_its_own_line_beside_the_backups(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=env)
    cli("backup", f"sqlite://{small_sqlite(tmp_path / 'source.db')}", "--repo", repo, env=env)
    for name in SEGMENTS:  # 16 MiB each, compressible to almost nothing
        segment = tmp_path / name
        segment.write_bytes(os.urandom(4096) + bytes(16 * 2**20 - 4096))
        cli("wal-push", "--repo", repo, str(segment), env=env)

    shown = cli_json("stats", "--repo", repo, env=env)
    [wal] = shown["archives"]
    assert (wal["name"], wal["files"], wal["plaintext_size"]) == ("WAL", 2, 2 * 16 * 2**20)
    assert 0 < wal["stored_size"] < 2**20
    backups_stored = shown["stored_size"]
    assert backups_stored < wal["plaintext_size"]  # "data" is the backups' alone, not the archive's

    text = cli("stats", "--repo", repo, env=env).stdout
    assert "WAL archive    2 files, 32.0 MiB -> " in text
    assert "binlog archive" not in text  # an archive with nothing in it is not shown


def test_stats_json_lists_no_archives_in_a_repository_without_any(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=env)
    assert json.loads(cli("stats", "--repo", repo, "--json", env=env).stdout)["archives"] == []


def _catalog(checksum: str) -> dict[str, object]:
    return {"level": "comprehensive", "tables": {"public.t": {"rows": 3, "checksum": checksum}}}


def test_a_matching_content_checksum_is_shown_with_its_hash() -> None:
    digest = "copy-sha256:" + "ab12" * 16
    [result] = [r for r in compare(_catalog(digest), _catalog(digest), "comprehensive") if "checksum" in r.detail]
    assert (result.status, result.detail) == (PASS, "content checksum copy-sha256:ab12ab12ab12ab12")


def test_a_differing_content_checksum_shows_both_hashes() -> None:
    want, have = "copy-sha256:" + "0" * 64, "copy-sha256:" + "f" * 64
    [result] = [r for r in compare(_catalog(want), _catalog(have), "comprehensive") if "checksum" in r.detail]
    assert result.status == FAIL
    assert result.detail == f"content differs: checksum copy-sha256:{'f' * 16}, expected copy-sha256:{'0' * 16}"
