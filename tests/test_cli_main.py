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


# --- errors at the boundary: one line, never a traceback (unless asked) ----------------------------


def _failing_list(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    import backstream.cli.cmd_list as cmd_list

    def run(args: object) -> int:
        raise error

    monkeypatch.setattr(cmd_list, "run", run)


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (PermissionError(13, "Permission denied", "/root/x.db"), "permission denied: /root/x.db"),
        (OSError(28, "No space left on device", "/srv/repo/data"), "no space left on device: /srv/repo/data"),
        (OSError(18, "Invalid cross-device link", "/a", None, "/b"), "invalid cross-device link: /a -> /b"),
        (ExceptionGroup("task group", [PermissionError(13, "Permission denied", "/x")]), "permission denied: /x"),
    ],
)
def test_an_os_error_a_command_did_not_translate_is_one_line_with_its_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: BaseException, line: str
) -> None:
    monkeypatch.delenv("BACKSTREAM_DEBUG", raising=False)
    _failing_list(monkeypatch, error)
    assert main(["list", "--repo", "/nowhere"]) == 1
    assert capsys.readouterr().err == f"backstream: error: {line}\n"


def test_debug_shows_the_traceback_before_the_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _failing_list(monkeypatch, PermissionError(13, "Permission denied", "/root/x.db"))
    assert main(["--debug", "list", "--repo", "/nowhere"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "PermissionError" in err
    assert err.splitlines()[-1] == "backstream: error: permission denied: /root/x.db"


def test_a_bug_is_not_disguised_as_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _failing_list(monkeypatch, ZeroDivisionError("a bug"))
    with pytest.raises(ZeroDivisionError):
        main(["list", "--repo", "/nowhere"])
