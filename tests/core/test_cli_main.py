"""The command line as a whole: help for every command, version, one-line usage errors.

Each command's behaviour is specified in its own test file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

import pytest
from backstream import ConfigError, Register, hookimpl
from backstream.cli.main import COMMANDS, main
from backstream.plugins import Plugins
from backstream.version import __version__

OWN = [__import__(name, fromlist=["NAME"]).NAME for name in COMMANDS]
FROM_PLUGINS = [
    entry.name
    for entry in Plugins.load(autoload=False).commands().registered()
    if not hasattr(entry.factory, "extends")
]
NAMES = OWN + FROM_PLUGINS


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


def test_help_lists_backstreams_commands_then_the_plugins_ones_then_plugins() -> None:
    lines = run_cli("--help").stdout.splitlines()
    listed = [line.split()[0] for line in lines if line.startswith("    ") and line[4] != " "]
    assert listed[: len(OWN) - 1] == OWN[:-1] and listed[-1] == "plugins"
    assert {"wal-push", "wal-fetch", "pitr", "verify-pitr", "binlog-archive"} <= set(listed[len(OWN) - 1 : -1])


def test_the_version_imports_no_plugin() -> None:
    probe = (
        "import sys\nfrom backstream.cli.main import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('backstream_plugins') or m == 'backstream.plugins'))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


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


# --- commands plugins add (backstream_register_commands) -----------------------------------------


class Hello:
    help = "say hello"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--name", default="world")

    def run(self, args: argparse.Namespace) -> int:
        if args.name == "nobody":
            raise ConfigError("nobody to greet")
        print(f"hello {args.name}{getattr(args, 'shout', '')}")
        return 0


class Shout:
    extends = "hello"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--shout", action="store_const", const="!", default="")

    def check(self, args: argparse.Namespace) -> None:
        if args.shout and args.name == "quietly":
            raise ConfigError("--shout and quietly do not go together")


class Registers:
    def __init__(self, **commands: object) -> None:
        self.commands = commands

    @hookimpl
    def backstream_register_commands(self, register: Register[Any]) -> None:
        for name, command in self.commands.items():
            register.add(name.replace("_", "-"), command)


def with_plugin(monkeypatch: pytest.MonkeyPatch, plugin: object) -> None:
    load = Plugins.load.__func__  # type: ignore[attr-defined]

    def loading(cls: type[Plugins], **kwargs: Any) -> Plugins:
        return load(cls, autoload=False, extra_plugins=[plugin])

    monkeypatch.setattr(Plugins, "load", classmethod(loading))


def test_a_plugin_command_runs_with_the_options_another_plugin_adds(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with_plugin(monkeypatch, Registers(hello=Hello(), hello_shout=Shout()))
    assert main(["hello", "--name", "you", "--shout"]) == 0
    assert capsys.readouterr().out == "hello you!\n"


def test_options_a_plugin_adds_are_checked_before_the_command_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with_plugin(monkeypatch, Registers(hello=Hello(), hello_shout=Shout()))
    assert main(["hello", "--name", "quietly", "--shout"]) == 2
    assert capsys.readouterr().err == "backstream: error: --shout and quietly do not go together\n"


def test_a_plugin_commands_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with_plugin(monkeypatch, Registers(hello=Hello()))
    assert main(["hello", "--name", "nobody"]) == 2
    assert capsys.readouterr().err == "backstream: error: nobody to greet\n"


@pytest.mark.parametrize(
    ("commands", "words", "message"),
    [
        ({"list": Hello()}, ["list"], "registers command 'list', which backstream has"),
        ({"hello": object()}, ["hello"], "registered 'hello' as a command, but it has neither"),
        ({"hello_shout": Shout()}, ["list"], "adds options to 'hello', which is no command"),
        ({"hello": Hello(), "again": Hello(), "x": Shout(), "y": Shout()}, ["hello"], "failed to configure"),
    ],
)
def test_a_broken_plugin_command_is_one_line_naming_the_plugin(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    commands: dict[str, object],
    words: list[str],
    message: str,
) -> None:
    with_plugin(monkeypatch, Registers(**commands))
    assert main(words) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("backstream: error: ") and message in err, err
