"""Where the WAL commands find their repository: a local path is made absolute before it is
written into settings that PostgreSQL runs from inside its data directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from backstream_plugins.postgresql.walconfig import absolute_repo, load_wal_config


def test_a_relative_path_is_made_absolute_against_the_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/tmp")
    assert absolute_repo("backups/repo") == "/tmp/backups/repo"


def test_a_home_relative_path_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/dba")
    assert absolute_repo("~/repo") == "/home/dba/repo"


def test_a_relative_file_url_becomes_an_absolute_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/tmp")
    assert absolute_repo("file://repo") == "/tmp/repo"
    assert absolute_repo("file:///srv/repo") == "/srv/repo"


def test_remote_urls_and_absolute_paths_are_kept() -> None:
    assert absolute_repo("s3://bucket/prefix") == "s3://bucket/prefix"
    assert absolute_repo("/srv/repo") == "/srv/repo"


def test_a_relative_repository_in_a_config_file_is_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wal-push runs in the data directory; the file's own directory is what its author meant."""
    config = tmp_path / "etc" / "wal.toml"
    config.parent.mkdir()
    config.write_text('repo = "repo"\n')
    monkeypatch.delenv("BACKSTREAM_REPO", raising=False)
    monkeypatch.chdir("/")
    assert load_wal_config(config_file=str(config)).repo == str(tmp_path / "etc" / "repo")


def test_the_environment_can_be_left_out_to_read_what_the_server_will_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "wal.toml"
    config.write_text('repo = "/srv/repo"\n')
    monkeypatch.setenv("BACKSTREAM_REPO", "/somewhere/else")
    assert load_wal_config(config_file=str(config)).repo == "/somewhere/else"
    assert load_wal_config(config_file=str(config), environment={}).repo == "/srv/repo"
