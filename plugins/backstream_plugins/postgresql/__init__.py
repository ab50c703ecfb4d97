"""The postgresql plugin: logical (pg_dump) and physical (pg_basebackup) backups, their checks, the
WAL archive, point-in-time restore into a data directory and the commands that go with them
(``wal-push``, ``wal-fetch``, ``pitr``, ``verify-pitr``, ``backup --physical``, ``restore --to-dir``).

This module holds the hook implementations; the modules they name hold the work, and the heavy
ones (restore, drill, setup) are imported only when used.
"""

from __future__ import annotations

from typing import Any

from backstream import Register, hookimpl

REQUIRES = ("psycopg",)
EXTRA = "postgresql"


@hookimpl
def backstream_register_sources(register: Register[Any]) -> None:
    from backstream_plugins.postgresql.logical import PostgresFactory
    from backstream_plugins.postgresql.physical import PhysicalFactory

    register.add("postgresql", PostgresFactory(), requires=REQUIRES, extra=EXTRA)
    register.add("postgresql-physical", PhysicalFactory(), requires=REQUIRES, extra=EXTRA)


@hookimpl
def backstream_register_checks(register: Register[Any]) -> None:
    from backstream_plugins.postgresql.checks import PostgresChecks

    register.add("postgresql", PostgresChecks(), requires=REQUIRES, extra=EXTRA)


@hookimpl
def backstream_register_archives(register: Register[Any]) -> None:
    from backstream_plugins.postgresql.archive import WalArchive

    register.add("wal", WalArchive())


@hookimpl
def backstream_register_commands(register: Register[Any]) -> None:
    from backstream_plugins.postgresql.cmd_backup import BackupOptions
    from backstream_plugins.postgresql.cmd_pitr import Pitr
    from backstream_plugins.postgresql.cmd_restore import RestoreOptions
    from backstream_plugins.postgresql.cmd_verify_pitr import VerifyPitr
    from backstream_plugins.postgresql.cmd_wal_fetch import WalFetch
    from backstream_plugins.postgresql.cmd_wal_push import WalPush

    register.add("wal-push", WalPush())
    register.add("wal-fetch", WalFetch())
    register.add("pitr", Pitr())
    register.add("verify-pitr", VerifyPitr())
    register.add("backup:postgresql", BackupOptions())
    register.add("restore:postgresql", RestoreOptions())
