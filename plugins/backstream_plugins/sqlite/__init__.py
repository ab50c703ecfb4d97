"""The sqlite plugin: online backups of SQLite databases through the backup API, atomic restores,
restores to a point in time at backup granularity, their checks, and the ``demo`` command (the
README's first run).

This module holds the hook implementations; each one imports what it registers.
"""

from __future__ import annotations

from typing import Any

from backstream import Register, hookimpl


@hookimpl
def backstream_register_sources(register: Register[Any]) -> None:
    from backstream_plugins.sqlite.source import SqliteFactory

    register.add("sqlite", SqliteFactory())


@hookimpl
def backstream_register_checks(register: Register[Any]) -> None:
    from backstream_plugins.sqlite.checks import SqliteChecks

    register.add("sqlite", SqliteChecks())


@hookimpl
def backstream_register_commands(register: Register[Any]) -> None:
    from backstream_plugins.sqlite.cmd_demo import Demo

    register.add("demo", Demo())
