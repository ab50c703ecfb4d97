"""The backup repository: config, time-sorted backup ids, manifests (the commit point), locks, catalog.

``Repository`` is the entry point: ``await Repository.init(storage)`` / ``await Repository.open(storage)``.
"""

from backstream.repository.catalog import RepositoryStats, compute_stats
from backstream.repository.config import CONFIG_PATH, FORMAT_VERSION, RepositoryConfig
from backstream.repository.ids import backup_id_time, format_time, is_backup_id, new_backup_id, parse_time, utc_now
from backstream.repository.lock import LockInfo, hold_lock, read_locks, stale_reason
from backstream.repository.manifest import STATUS_FAILED, STATUS_OK, Manifest, ObjectRecord, SourceInfo
from backstream.repository.repo import Repository
from backstream.repository.urls import redact_url, url_scheme

__all__ = [
    "CONFIG_PATH",
    "FORMAT_VERSION",
    "STATUS_FAILED",
    "STATUS_OK",
    "LockInfo",
    "Manifest",
    "ObjectRecord",
    "Repository",
    "RepositoryConfig",
    "RepositoryStats",
    "SourceInfo",
    "backup_id_time",
    "compute_stats",
    "format_time",
    "hold_lock",
    "is_backup_id",
    "new_backup_id",
    "parse_time",
    "read_locks",
    "redact_url",
    "stale_reason",
    "url_scheme",
    "utc_now",
]
