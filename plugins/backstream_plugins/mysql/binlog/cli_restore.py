"""The mysql source's ``restore --target-time`` path: dump + binlog replay to the second."""

from __future__ import annotations

from backstream.errors import ConfigError
from backstream.jobs.target_time import TargetTimeResult, parse_target_time, target_time_outcome
from backstream.plugins import Plugins
from backstream.protocols import RestoreOutcome, RestoreRequest

from backstream_plugins.mysql.binlog.restore import restore_to_time


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
    return target_time_outcome(result, request.to, log_files="binlog")
