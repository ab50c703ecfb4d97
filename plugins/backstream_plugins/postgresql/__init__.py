"""The postgresql plugin: logical and physical backups, the WAL archive, point-in-time restore and
its commands (``wal-push``, ``wal-fetch``, ``pitr``, ``verify-pitr``, ``backup --physical``).

This module holds the hook implementations; each one imports what it registers.
"""

from __future__ import annotations

from typing import Any

from backstream import Register, hookimpl


@hookimpl
def backstream_register_commands(register: Register[Any]) -> None:
    from backstream_plugins.postgresql.cmd_backup import BackupOptions
    from backstream_plugins.postgresql.cmd_pitr import Pitr
    from backstream_plugins.postgresql.cmd_verify_pitr import VerifyPitr
    from backstream_plugins.postgresql.cmd_wal_fetch import WalFetch
    from backstream_plugins.postgresql.cmd_wal_push import WalPush

    register.add("wal-push", WalPush())
    register.add("wal-fetch", WalFetch())
    register.add("pitr", Pitr())
    register.add("verify-pitr", VerifyPitr())
    register.add("backup:postgresql", BackupOptions())
