"""The PostgreSQL point-in-time options of ``backstream restore`` (``--to-dir``, ``--target-*``, ``--start``).

Registered as ``restore:postgresql`` (a ``CommandOptions``); the restore command hands them, with
its own, to the physical restore path (``backstream_plugins.postgresql.restore``).
"""

from __future__ import annotations

import argparse

from backstream import ConfigError


class RestoreOptions:
    """Options for restoring a physical base backup into a data directory (an option ``restore``
    already has, such as ``--target-time``, is shared, not added twice)."""

    extends = "restore"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("PostgreSQL point-in-time restore (physical backups, docs/pitr.md)")
        known = parser._option_string_actions

        def add(flag: str, **kwargs: object) -> None:
            if flag not in known:
                group.add_argument(flag, **kwargs)  # type: ignore[arg-type]

        add("--to-dir", metavar="DATADIR", help="restore a physical base backup into this empty or new data directory")
        add("--target-time", metavar="TIME", help="recover to this time, e.g. '2026-11-25 14:30:00+00'")
        add("--target-lsn", metavar="LSN", help="recover to this WAL location, e.g. 0/16B3748")
        add("--target-xid", metavar="XID", help="recover to this transaction id")
        add("--target", choices=("immediate",), help="immediate: stop as soon as the base backup is consistent")
        add("--start", action="store_true", help="start the server and wait until recovery reaches the target")
        add("--port", type=int, metavar="N", help="port for the restored server (written to postgresql.auto.conf)")
        add("--pg-bindir", metavar="DIR", help="where pg_ctl and pg_controldata live (default: found from the version)")
        add(
            "--wal-prefetch",
            type=int,
            metavar="N",
            help="wal-fetch fetches the next N segments in the background (default: $BACKSTREAM_WAL_PREFETCH or 0)",
        )
        add("--config", metavar="FILE", help="wal-fetch settings for the restored server (default: $BACKSTREAM_CONFIG)")
        add(
            "--tablespace-map",
            metavar="OLD=NEW",
            action="append",
            default=[],
            help="restore the tablespace at OLD (its original location) into NEW instead (repeatable; absolute paths)",
        )

    def check(self, args: argparse.Namespace) -> None:
        """``--tablespace-map`` only with ``--to-dir``; ``--force`` never with it."""
        if getattr(args, "to_dir", None):
            if getattr(args, "force", False):
                raise ConfigError(
                    "--force does not apply to --to-dir: a data directory is restored only into an empty or new one"
                )
        elif getattr(args, "tablespace_map", None):
            raise ConfigError("--tablespace-map applies to physical restores only (--to-dir DATADIR)")
