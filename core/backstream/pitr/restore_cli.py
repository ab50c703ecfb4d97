"""The PostgreSQL point-in-time options of ``backstream restore`` (``--to-dir``, ``--target-*``, ``--start``).

``cmd_restore`` adds these options and hands a ``--to-dir`` restore to ``run_to_dir``.
"""

from __future__ import annotations

import argparse
import os
import re

from backstream.cli.crypto_args import audit_log, provider_options
from backstream.cli.options import print_json, run_async, storage_options
from backstream.errors import ConfigError
from backstream.jobs.encryption import KeyOptions
from backstream.pitr.pg_restore_dir import RestoredDir, restore_to_dir
from backstream.pitr.targets import RecoveryTarget
from backstream.pitr.walconfig import load_wal_config


def add_pitr_arguments(parser: argparse.ArgumentParser) -> None:
    """Options for restoring a physical base backup into a data directory (an option someone else
    already defined, such as ``--target-time`` for binlog replay, is shared, not added twice)."""
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


def tablespace_map(pairs: list[str]) -> dict[str, str]:
    """``OLD=NEW`` options as a mapping (``\\=`` for an ``=`` inside a path, as pg_basebackup -T)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        parts = [part.replace("\\=", "=") for part in re.split(r"(?<!\\)=", pair)]
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ConfigError(f"--tablespace-map wants OLD=NEW, not {pair!r}")
        old, new = (os.path.normpath(part) for part in parts)
        if not os.path.isabs(old) or not os.path.isabs(new):
            raise ConfigError(f"--tablespace-map wants absolute paths, not {pair!r}")
        if old in mapping:
            raise ConfigError(f"--tablespace-map names {old} twice")
        mapping[old] = new
    return mapping


def run_to_dir(args: argparse.Namespace) -> int:
    if getattr(args, "force", False):
        raise ConfigError(
            "--force does not apply to --to-dir: a data directory is restored only into an empty or new one"
        )
    target = RecoveryTarget.parse(time=args.target_time, lsn=args.target_lsn, xid=args.target_xid, target=args.target)
    wal = load_wal_config(config_file=args.config, repo=args.repo)
    if storage_options(args):
        wal = type(wal)(**{**wal.__dict__, "storage_options": {**wal.storage_options, **storage_options(args)}})
    if getattr(args, "wal_prefetch", None) is not None:
        wal = type(wal)(**{**wal.__dict__, "prefetch": max(0, args.wal_prefetch)})
    keys = KeyOptions(provider_options={**wal.provider_options, **provider_options(args)}, audit=audit_log(args))
    spaces = tablespace_map(getattr(args, "tablespace_map", None) or [])

    async def work() -> RestoredDir:
        return await restore_to_dir(
            args.backup,
            wal=wal,
            to_dir=args.to_dir,
            target=target,
            start=args.start,
            port=args.port,
            pg_bindir=args.pg_bindir,
            keys=keys,
            tablespace_map=spaces,
        )

    done = run_async(work)
    if getattr(args, "json", False):
        print_json(done.__dict__)
    else:
        verb = {"promoted": "recovered and promoted", "in recovery": "started (replaying WAL)"}.get(
            done.state, "prepared"
        )
        print(f"restored {done.backup_id} to {done.data_dir} for recovery to {done.target}: {verb}")
    return 0
