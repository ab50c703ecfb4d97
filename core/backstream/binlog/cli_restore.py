"""The ``restore --target-time`` path for database targets (MySQL/MariaDB replay, SQLite).

The mysql and sqlite source plugins' restore paths hand a request with a target time here.
"""

from __future__ import annotations

from backstream.binlog.restore import TargetTimeResult, parse_target_time, restore_to_time
from backstream.errors import ConfigError
from backstream.plugins import Plugins
from backstream.protocols import RestoreOutcome, RestoreRequest
from backstream.repository import format_time, redact_url


async def restore_at_time(request: RestoreRequest, plugins: Plugins) -> RestoreOutcome:
    """Restore ``request.to`` as it was at ``request.target_time``."""
    if not request.to or not request.target_time:
        raise ConfigError("a point-in-time restore needs --to TARGET and --target-time TIME")
    result: TargetTimeResult = await restore_to_time(
        request.backup,
        repo=request.repo,
        to=request.to,
        target_time=parse_target_time(request.target_time),
        force=request.force,
        source=request.source,
        options=request.options,
        plugins=plugins,
        progress=request.progress,
        storage_options=request.storage_options,
        keys=request.keys,
    )
    target = redact_url(request.to)
    if result.mode == "binlog-replay":
        summary = (
            f"restored {result.manifest.backup_id} to {target} and replayed {len(result.replayed)} binlog file(s) "
            f"up to {format_time(result.target_time)}"
        )
    else:
        summary = (
            f"restored {result.manifest.backup_id} (the newest backup not after {format_time(result.target_time)}) "
            f"to {target}"
        )
    return RestoreOutcome(result.manifest.backup_id, summary, {**result.to_dict(), "target": target})
