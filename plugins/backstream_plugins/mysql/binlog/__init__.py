"""MySQL/MariaDB binlog archiving and point-in-time restore (``binlog-archive``, ``restore --target-time``).

Archived files live under ``binlog/<server-id>/`` of a repository, each with a JSON record as its commit point.
"""

from backstream.jobs.target_time import TargetTimeResult, choose_backup, parse_target_time

from backstream_plugins.mysql.binlog.archive import (
    ArchiveResult,
    archive_binlogs,
    archived_records,
    archived_server_ids,
    follow_binlogs,
)
from backstream_plugins.mysql.binlog.layout import BinlogRecord, EventSpan, binlog_sequence, scan_events
from backstream_plugins.mysql.binlog.replay import ReplayError, ReplayPlan, ReplayProgress, plan_replay, stop_datetime
from backstream_plugins.mysql.binlog.restore import restore_to_time

__all__ = [
    "ArchiveResult",
    "BinlogRecord",
    "EventSpan",
    "ReplayError",
    "ReplayPlan",
    "ReplayProgress",
    "TargetTimeResult",
    "archive_binlogs",
    "archived_records",
    "archived_server_ids",
    "binlog_sequence",
    "choose_backup",
    "follow_binlogs",
    "parse_target_time",
    "plan_replay",
    "restore_to_time",
    "scan_events",
    "stop_datetime",
]
