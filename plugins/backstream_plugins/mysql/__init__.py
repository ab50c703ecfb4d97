"""The mysql plugin (MySQL and MariaDB): dumps and restores, the binlog archive, point-in-time
restore by binlog replay, and the ``binlog-archive`` command.

This module holds the hook implementations; each one imports what it registers.
"""

from __future__ import annotations

from typing import Any

from backstream import Register, hookimpl


@hookimpl
def backstream_register_archives(register: Register[Any]) -> None:
    from backstream_plugins.mysql.archive import BinlogArchive

    register.add("binlog", BinlogArchive())


@hookimpl
def backstream_register_commands(register: Register[Any]) -> None:
    from backstream_plugins.mysql.cmd_binlog_archive import BinlogArchive

    register.add("binlog-archive", BinlogArchive())
