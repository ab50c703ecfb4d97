"""One way to reach a MySQL/MariaDB server: every command that connects (backup, restore, verify,
binlog-archive) finds the password in ``~/.my.cnf`` the way the client tools do, and gives up after
``connect_timeout`` seconds with one line.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from backstream import ConfigError
from backstream_plugins.mysql.connection import CONNECT_TIMEOUT, parse_mysql_url
from backstream_plugins.mysql.optionfile import client_password, option_file_text
from fixtures.mariadb import MariaDBServer
from fixtures.verify_cli import cli, make_env

# --- option files, read as the client tools read them -------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["plain", "bs p@ss#\"q'uo\\te:/?%", "tab\tand\\n", " spaced ", "#hash", ""],
)
def test_a_password_written_for_the_tools_reads_back_the_same(password: str) -> None:
    assert client_password(option_file_text(password)) == password


def test_option_file_rules_quotes_comments_groups_and_the_last_setting() -> None:
    text = """
    # a comment
    [mysqld]
    password = not-this-group
    [client]
    user = someone
    password = first
    [client]
    password = 'single quoted # kept'  # a comment after the value
    [mysqldump]
    password = tools-only
    """
    assert client_password(text) == "single quoted # kept"
    assert client_password("[client]\npassword = bare value # comment\n") == "bare value"
    assert client_password("[client-mariadb]\npassword=x\n") == "x"
    assert client_password("[mysql]\npassword=x\n") is None
    assert client_password("") is None


def test_connect_timeout_comes_from_the_url() -> None:
    assert parse_mysql_url("mysql://u@h/db", need_database=True).connect_timeout == CONNECT_TIMEOUT
    assert parse_mysql_url("mysql://u@h/db?connect_timeout=2.5", need_database=True).connect_timeout == 2.5
    with pytest.raises(ConfigError, match="connect_timeout"):
        parse_mysql_url("mysql://u@h/db?connect_timeout=soon", need_database=True)
    with pytest.raises(ConfigError, match="unknown MySQL URL parameter"):
        parse_mysql_url("mysql://u@h/db?timeout=2", need_database=True)


# --- every command, against a real server ----------------------------------------------------------


@pytest.fixture
def home_with_my_cnf(mariadb_server: MariaDBServer, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    my_cnf = home / ".my.cnf"
    my_cnf.write_text(option_file_text(mariadb_server.password))
    my_cnf.chmod(0o600)
    env = make_env(tmp_path)
    env.pop("MYSQL_PWD", None)
    env["HOME"] = str(home)
    return env


def test_every_command_finds_the_password_in_my_cnf(
    mariadb_server: MariaDBServer, home_with_my_cnf: dict[str, str], tmp_path: Path
) -> None:
    env = home_with_my_cnf
    server = mariadb_server
    db = server.create_database(server.unique_name("mycnf"))
    server.execute("CREATE TABLE t (id INT PRIMARY KEY, note TEXT)", database=db)
    server.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')", database=db)
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=env)
    no_password = server.url(db, password=False)
    backup_id = cli("backup", no_password, "--repo", repo, env=env).stdout.strip()
    cli("binlog-archive", server.url(password=False), "--repo", repo, env=env)
    copy = server.unique_name("mycnf_copy")
    cli("restore", backup_id, "--repo", repo, "--to", server.url(copy, password=False), env=env)
    assert server.execute("SELECT id, note FROM t ORDER BY id", database=copy) == [(1, "one"), (2, "two")]
    cli("verify", backup_id, "--repo", repo, "--scratch", server.url(password=False), env=env)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never sends the MySQL greeting."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


@pytest.mark.parametrize("command", ["backup", "binlog-archive"])
def test_a_server_that_does_not_answer_fails_after_connect_timeout_in_one_line(
    command: str, silent_server: int, tmp_path: Path
) -> None:
    env = make_env(tmp_path)
    repo = str(tmp_path / "repo")
    cli("init", "--repo", repo, env=env)
    url = f"mysql://someone:secret@127.0.0.1:{silent_server}/{'db' if command == 'backup' else ''}?connect_timeout=1"
    started = time.monotonic()
    result = cli(command, url, "--repo", repo, env=env, expect=None)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot connect to MySQL" in lines[0] and "secret" not in lines[0]
    assert elapsed < 1 + 6, f"{command} waited {elapsed:.1f} s for a server that never answers"
