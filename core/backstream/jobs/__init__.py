"""Backup and restore jobs: compose source, compressor, cipher and storage plugins into pipelines.

``await backup(source_url, repo=...)`` returns the committed manifest; ``await restore(id, repo=..., to=...)``.
"""

from backstream.jobs.backup import LockTiming, backup
from backstream.jobs.common import CompressionSpec, open_repository, source_factory
from backstream.jobs.encryption import KeyOptions, encryption_available
from backstream.jobs.restore import ObjectReader, restore, verified
from backstream.jobs.restore_paths import restore_plain, restore_request
from backstream.progress import Progress, SizedProgress

__all__ = [
    "CompressionSpec",
    "KeyOptions",
    "LockTiming",
    "ObjectReader",
    "Progress",
    "SizedProgress",
    "backup",
    "encryption_available",
    "open_repository",
    "restore",
    "restore_plain",
    "restore_request",
    "source_factory",
    "verified",
]
