"""The mysql plugin (MySQL and MariaDB): dumps and restores, their checks, the binlog archive,
point-in-time restore by binlog replay, and the ``binlog-archive`` command.

Every part reaches the server through ``connection.connect`` (``~/.my.cnf``, ``MYSQL_PWD``,
``connect_timeout``). This module holds the hook implementations; each one imports what it registers.
"""

from __future__ import annotations

from typing import Any

from backstream import Register, hookimpl

REQUIRES = ("pymysql",)
EXTRA = "mysql"


@hookimpl
def backstream_register_sources(register: Register[Any]) -> None:
    from backstream_plugins.mysql.source import MySQLFactory

    register.add("mysql", MySQLFactory(), requires=REQUIRES, extra=EXTRA)


@hookimpl
def backstream_register_checks(register: Register[Any]) -> None:
    from backstream_plugins.mysql.checks import MysqlChecks

    register.add("mysql", MysqlChecks(), requires=REQUIRES, extra=EXTRA)


@hookimpl
def backstream_register_archives(register: Register[Any]) -> None:
    from backstream_plugins.mysql.archive import BinlogArchive

    register.add("binlog", BinlogArchive())


@hookimpl
def backstream_register_commands(register: Register[Any]) -> None:
    from backstream_plugins.mysql.cmd_binlog_archive import BinlogArchive

    register.add("binlog-archive", BinlogArchive())
