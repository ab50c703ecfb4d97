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


def test_only_the_first_stop_signal_interrupts_a_second_one_does_not_cut_cleanup_short(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import signal

    from backstream.cli.main import _stop_signals_interrupt

    interrupts: list[int] = []
    monkeypatch.setattr(
        signal,
        "getsignal",
        lambda number: (lambda *a: interrupts.append(a[0])) if number == signal.SIGINT else signal.SIG_DFL,
    )
    installed: dict[int, object] = {}
    monkeypatch.setattr(signal, "signal", lambda number, handler: installed.setdefault(number, handler))
    received: list[int] = []
    with _stop_signals_interrupt(received):
        handler = installed[signal.SIGTERM]
        handler(signal.SIGTERM, None)  # type: ignore[operator]
        handler(signal.SIGHUP, None)  # type: ignore[operator]
    assert received == [signal.SIGTERM]
    assert interrupts == [signal.SIGINT]  # asyncio's runner was told once
