"""Entry point of the ``backstream`` command: parses arguments and runs one command.

backstream's own commands are modules exposing ``NAME``, ``HELP``, ``configure(parser)`` and
``run(args) -> int``; plugins add ``Command`` objects and ``CommandOptions`` for existing commands
through ``backstream_register_commands`` (docs/plugins.md).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from backstream.errors import BackstreamError, PluginError, os_error_line, primary_error
from backstream.version import __version__

if TYPE_CHECKING:
    from backstream.plugins import Plugins
    from backstream.protocols import CommandOptions

COMMANDS: tuple[str, ...] = (
    "backstream.cli.cmd_init",
    "backstream.cli.cmd_backup",
    "backstream.cli.cmd_restore",
    "backstream.cli.cmd_list",
    "backstream.cli.cmd_show",
    "backstream.cli.cmd_delete",
    "backstream.cli.cmd_verify",
    "backstream.cli.cmd_check",
    "backstream.cli.cmd_cleanup",
    "backstream.cli.cmd_prune",
    "backstream.cli.cmd_stats",
    "backstream.cli.cmd_run",
    "backstream.cli.cmd_daemon",
    "backstream.cli.cmd_trigger",
    "backstream.cli.cmd_status",
    "backstream.cli.cmd_metrics",
    "backstream.cli.cmd_encrypt",
    "backstream.cli.cmd_decrypt",
    "backstream.cli.cmd_keys",
    "backstream.cli.cmd_bench",
    "backstream.cli.cmd_plugins",
)
"""backstream's own command modules, in the order ``--help`` lists them; the commands plugins add
come before the last one (``plugins``), in the order they were registered (built-ins first)."""

DEBUG_ENV = "BACKSTREAM_DEBUG"


def command_module(name: str) -> str | None:
    """The module of backstream's own command ``name`` (``list`` -> ``backstream.cli.cmd_list``), if it exists."""
    module = "backstream.cli.cmd_" + name.replace("-", "_")
    return module if module in COMMANDS else None


@dataclass(frozen=True)
class CommandSpec:
    """One subcommand as the parser sees it: its word, help, how to configure and run it, the
    plugin that provides it (None for backstream's own) and the options plugins add to it, each
    with the name of the plugin that adds them."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    provider: str | None = None
    options: tuple[tuple[str, CommandOptions], ...] = field(default=())

    @classmethod
    def of_module(cls, dotted: str) -> CommandSpec:
        module = importlib.import_module(dotted)
        return cls(module.NAME, module.HELP, module.configure, module.run)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``backstream: error: ...`` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"backstream: error: {message} (see: {self.prog} --help)\n")


def build_parser(commands: Sequence[CommandSpec]) -> argparse.ArgumentParser:
    """The parser of ``commands``, each with the options plugins add to it; a plugin whose command
    or options cannot be configured (say, an option another one already added) is a PluginError."""
    parser = _Parser(
        prog="backstream",
        description="Streaming backup and point-in-time recovery for PostgreSQL, MySQL/MariaDB and SQLite.",
    )
    parser.add_argument("--version", action="version", version=f"backstream {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    parser.add_argument(
        "--debug",
        action="store_true",
        default=bool(os.environ.get(DEBUG_ENV)),
        help=f"show the traceback behind an error, not just its one line (also: ${DEBUG_ENV}=1)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands:
        sub = subparsers.add_parser(command.name, help=command.help.replace("%", "%%"), description=command.help)
        if command.provider is None:
            command.configure(sub)  # backstream's own: a failure is a bug, shown with its traceback
        else:
            _configure(command.provider, f"its command {command.name!r}", command.configure, sub)
        for provider, extra in command.options:
            _configure(provider, f"its options of {command.name!r}", extra.configure, sub)
        sub.set_defaults(_run=command.run, _checks=[extra.check for _, extra in command.options])
    return parser


def _configure(
    provider: str, what: str, configure: Callable[[argparse.ArgumentParser], None], parser: argparse.ArgumentParser
) -> None:
    try:
        configure(parser)
    except Exception as exc:
        raise PluginError(f"plugin {provider!r} failed to configure {what}: {exc}") from exc


def plugin_commands(plugins: Plugins) -> tuple[list[CommandSpec], dict[str, list[tuple[str, CommandOptions]]]]:
    """The commands plugins add, in registration order, and by command name the options they add
    to commands (with the provider of each)."""
    from backstream.protocols import Command, CommandOptions

    commands: list[CommandSpec] = []
    options: dict[str, list[tuple[str, CommandOptions]]] = {}
    for entry in plugins.commands().registered():
        factory = entry.factory
        if isinstance(factory, CommandOptions):
            options.setdefault(factory.extends, []).append((entry.provider, factory))
        elif isinstance(factory, Command):
            if command_module(entry.name) is not None:
                raise PluginError(f"plugin {entry.provider!r} registers command {entry.name!r}, which backstream has")
            commands.append(CommandSpec(entry.name, factory.help, factory.configure, factory.run, entry.provider))
        else:
            raise PluginError(
                f"plugin {entry.provider!r} registered {entry.name!r} as a command, but it has neither "
                "help, configure and run (a Command) nor extends, configure and check (CommandOptions)"
            )
    own = {dotted.rsplit(".cmd_", 1)[1].replace("_", "-") for dotted in COMMANDS}
    known = own | {command.name for command in commands}
    for name, extras in options.items():
        if name not in known:
            raise PluginError(f"plugin {extras[0][0]!r} adds options to {name!r}, which is no command")
    return commands, options


def choose_commands(first: str | None, plugins: Plugins | None) -> list[CommandSpec]:
    """The commands to build the parser from: only the one named by ``first`` (start-up time counts:
    a backup should start streaming at once), or every command for --help, no command or an
    unknown one; each with the options plugins add to it."""
    found, options = plugin_commands(plugins) if plugins is not None else ([], {})
    chosen = command_module(first) if first else None
    if chosen is not None:
        ordered = [CommandSpec.of_module(chosen)]
    elif first is not None and any(command.name == first for command in found):
        ordered = [command for command in found if command.name == first]
    else:
        own = [CommandSpec.of_module(dotted) for dotted in COMMANDS]
        ordered = [*own[:-1], *found, *own[-1:]]
    return [
        CommandSpec(c.name, c.help, c.configure, c.run, c.provider, tuple(options.get(c.name, ()))) for c in ordered
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns (and, as a script, exits with) the process exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    first = next((word for word in words if not word.startswith("-")), None)
    debug = "--debug" in words or bool(os.environ.get(DEBUG_ENV))
    try:
        if first is None and "--version" in words:
            parser = build_parser([])  # the version alone: no command, no plugin is imported
        else:
            from backstream.plugins import Plugins  # the commands plugins add, and their options

            parser = build_parser(choose_commands(first, Plugins.load()))
    except BackstreamError as exc:
        return _failed(exc, [], debug=debug)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    from backstream.runtime import StopSignals

    with StopSignals.install() as stop:  # SIGTERM and SIGHUP stop the command as Ctrl-C does
        try:
            for check in args._checks:
                check(args)
            code: int = args._run(args)
            return code
        except (BackstreamError, OSError, KeyboardInterrupt, BaseExceptionGroup) as exc:
            failure = exc
    return _failed(failure, stop.received, debug=args.debug)


def _failed(exc: BaseException, received: list[int], *, debug: bool) -> int:
    """Print the one line for a command that ended in ``exc`` and return the exit status."""
    error = primary_error(exc)  # a task group's failure: the error behind it, not the cancellations
    if isinstance(error, BackstreamError):
        _print_error(str(error), exc, debug)
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        if received:
            name = signal.Signals(received[0]).name
            print(f"backstream: stopped by {name}", file=sys.stderr)
            return 128 + received[0]
        print("backstream: interrupted", file=sys.stderr)
        return 130
    if isinstance(error, BrokenPipeError):
        return 141
    if isinstance(error, OSError):  # one a command did not translate: what and where, in one line
        _print_error(os_error_line(error), exc, debug)
        return 1
    raise exc  # a bug: its traceback is the report


def _print_error(line: str, exc: BaseException, debug: bool) -> None:
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    print(f"backstream: error: {line}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
