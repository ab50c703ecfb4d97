"""Frozen job lifecycle events passed to the ``backstream_job_*`` hooks.

Each carries the job id and kind; timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class JobStarted:
    """A job began."""

    job_id: str
    kind: str
    started_at: datetime
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobFinished:
    """A job ended successfully."""

    job_id: str
    kind: str
    started_at: datetime
    finished_at: datetime
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobFailed:
    """A job ended with an error; ``error`` is the one-line message."""

    job_id: str
    kind: str
    started_at: datetime
    failed_at: datetime
    error: str
    details: dict[str, Any] = field(default_factory=dict)
