"""The command line as a whole: help for every command, version, one-line usage errors.

Each command's behaviour is specified in its own test file.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from backstream.cli.main import COMMANDS, main
from backstream.version import __version__

NAMES = [__import__(name, fromlist=["NAME"]).NAME for name in COMMANDS]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "backstream.cli.main", *args], capture_output=True, text=True)


def test_version_prints_the_installed_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"backstream {__version__}"


def test_top_level_help_lists_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        assert name in result.stdout


@pytest.mark.parametrize("name", NAMES)
def test_every_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: backstream " + name)


def test_an_unknown_command_is_one_line_and_exit_status_2() -> None:
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("backstream: error:")
    assert "Traceback" not in result.stderr


def test_no_command_prints_help_and_fails() -> None:
    result = run_cli()
    assert result.returncode == 2 and "usage:" in result.stderr
