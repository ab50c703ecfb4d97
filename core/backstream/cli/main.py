"""Entry point of the ``backstream`` command: parses arguments and runs one command module.

Each command module exposes ``NAME``, ``HELP``, ``configure(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from types import FrameType, ModuleType
from typing import NoReturn

from backstream.errors import BackstreamError, os_error_line, primary_error
from backstream.version import __version__

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
    "backstream.cli.cmd_demo",
    "backstream.cli.cmd_encrypt",
    "backstream.cli.cmd_decrypt",
    "backstream.cli.cmd_keys",
    "backstream.cli.cmd_bench",
    "backstream.cli.cmd_wal_push",
    "backstream.cli.cmd_wal_fetch",
    "backstream.cli.cmd_pitr",
    "backstream.cli.cmd_verify_pitr",
    "backstream.cli.cmd_binlog_archive",
    "backstream.cli.cmd_plugins",
)
"""Command modules, in the order ``--help`` lists them."""

DEBUG_ENV = "BACKSTREAM_DEBUG"


def command_module(name: str) -> str | None:
    """The module of command ``name`` (``wal-push`` -> ``backstream.cli.cmd_wal_push``), if it exists."""
    module = "backstream.cli.cmd_" + name.replace("-", "_")
    return module if module in COMMANDS else None


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``backstream: error: ...`` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"backstream: error: {message} (see: {self.prog} --help)\n")


def build_parser(modules: Sequence[ModuleType]) -> argparse.ArgumentParser:
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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in modules:
        sub = commands.add_parser(module.NAME, help=module.HELP.replace("%", "%%"), description=module.HELP)
        module.configure(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns (and, as a script, exits with) the process exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    # Only the chosen command's module is imported (start-up time counts: PostgreSQL runs wal-push
    # once per WAL file, and a backup should start streaming at once); all of them for --help,
    # no command or an unknown one.
    first = next((word for word in words if not word.startswith("-")), None)
    chosen = command_module(first) if first else None
    modules = [importlib.import_module(name) for name in ((chosen,) if chosen else COMMANDS)]
    parser = build_parser(modules)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not getattr(args, "_run", None):
        parser.print_help(sys.stderr)
        return 2
    received: list[int] = []
    try:
        with _stop_signals_interrupt(received):
            code: int = args._run(args)
        return code
    except (BackstreamError, OSError, KeyboardInterrupt, BaseExceptionGroup) as exc:
        return _failed(exc, received, debug=args.debug)


def _failed(exc: BaseException, received: list[int], *, debug: bool) -> int:
    """Print the one line for a command that ended in ``exc`` and return the exit status."""
    error = primary_error(exc)  # a task group's failure: the error behind it, not the cancellations
    if isinstance(error, BackstreamError):
        _print_error(str(error), debug)
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
        _print_error(os_error_line(error), debug)
        return 1
    raise exc  # a bug: its traceback is the report


def _print_error(line: str, debug: bool) -> None:
    if debug:
        traceback.print_exc(file=sys.stderr)
    print(f"backstream: error: {line}", file=sys.stderr)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that stop a command the way Ctrl-C does: the job is cancelled, so its dump tools
(each in a process group of its own, see backstream.tools) are killed, partial objects are
removed and the repository lock is released, instead of the process dying on the spot."""


@contextlib.contextmanager
def _stop_signals_interrupt(received: list[int]) -> Iterator[None]:
    """While the command runs, let SIGTERM and SIGHUP do what Ctrl-C does (remembering which came).

    Only signals left at their default action are taken over: one that the caller ignores
    (``nohup``, ``trap '' TERM``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if received:
            return  # already stopping: a second SIGTERM (say, from a service manager) must not cut cleanup short
        received.append(signum)
        on_sigint = signal.getsignal(signal.SIGINT)
        if callable(on_sigint):  # asyncio's runner (cancels the job), or Python's default handler
            on_sigint(signal.SIGINT, frame)
        else:  # SIGINT ignored or default: stop all the same
            raise KeyboardInterrupt

    previous = {
        number: signal.signal(number, interrupt)
        for number in STOP_SIGNALS
        if signal.getsignal(number) == signal.SIG_DFL
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
