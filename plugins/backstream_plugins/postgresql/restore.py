"""The restore path of physical base backups (``RestorePath`` of ``postgresql-physical``): a
``restore --to-dir DATADIR`` request becomes ``restore_to_dir`` with its recovery target and WAL
settings, and ``--target-time`` on a logical backup is refused with the way to do it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from backstream import ConfigError, Plugins, RestoreOutcome, RestoreRequest
from backstream.jobs import KeyOptions, restore_plain

from backstream_plugins.postgresql.restore_dir import restore_to_dir
from backstream_plugins.postgresql.targets import RecoveryTarget
from backstream_plugins.postgresql.walconfig import load_wal_config


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


def claims_directory(request: RestoreRequest) -> bool:
    """A data directory (``--to-dir``) is a target only physical base backups restore to."""
    return bool(request.extra.get("to_dir"))


async def restore_physical(request: RestoreRequest, plugins: Plugins) -> RestoreOutcome:
    """Lay down a physical base backup in ``--to-dir`` for recovery to the target (``--target-*``),
    its restore_command reading the repository's WAL archive; with ``--start``, recover."""
    extra: Mapping[str, Any] = request.extra
    to_dir = extra.get("to_dir")
    if not to_dir:
        raise ConfigError(
            f"backup {request.backup} is a physical base backup: it restores into a data directory (--to-dir DATADIR)"
        )
    target = RecoveryTarget.parse(
        time=request.target_time, lsn=extra.get("target_lsn"), xid=extra.get("target_xid"), target=extra.get("target")
    )
    wal = load_wal_config(config_file=extra.get("config"), repo=request.repo or None)
    if request.storage_options:
        wal = type(wal)(**{**wal.__dict__, "storage_options": {**wal.storage_options, **request.storage_options}})
    if extra.get("wal_prefetch") is not None:
        wal = type(wal)(**{**wal.__dict__, "prefetch": max(0, int(extra["wal_prefetch"]))})
    given = request.keys or KeyOptions()
    keys = KeyOptions(provider_options={**wal.provider_options, **given.provider_options}, audit=given.audit)
    done = await restore_to_dir(
        request.backup,
        wal=wal,
        to_dir=str(to_dir),
        target=target,
        start=bool(extra.get("start")),
        port=extra.get("port"),
        pg_bindir=extra.get("pg_bindir"),
        keys=keys,
        plugins=plugins,
        tablespace_map=tablespace_map(list(extra.get("tablespace_map") or [])),
    )
    verb = {"promoted": "recovered and promoted", "in recovery": "started (replaying WAL)"}.get(done.state, "prepared")
    summary = f"restored {done.backup_id} to {done.data_dir} for recovery to {done.target}: {verb}"
    return RestoreOutcome(done.backup_id, summary, dict(done.__dict__))


async def restore_logical(request: RestoreRequest, plugins: Plugins) -> RestoreOutcome:
    """A logical dump restores as it is; a point in time needs WAL replayed onto a physical backup."""
    if request.target_time:
        raise ConfigError(
            "PostgreSQL point-in-time restore replays WAL onto a physical base backup: "
            "use restore ID --to-dir DATADIR --target-time ..."
        )
    return await restore_plain(request, plugins)
