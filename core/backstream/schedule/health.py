"""The daemon's ``/health`` document: is every job's newest good backup fresh, and the totals.

``health(statuses, records, now)`` is pure: the scheduler's status snapshot in, a JSON-ready
dict out. ``status`` is ``healthy`` unless a job is critical by its ``max_age`` (the same rule as
``backstream status --check``); a job without ``max_age`` never makes the daemon unhealthy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from backstream.repository import format_time, redact_url
from backstream.schedule.config import repository_key
from backstream.schedule.history import CANCELLED, SUCCESS, RunRecord
from backstream.schedule.status import CRITICAL, STATE_NAMES, JobStatus

HEALTHY, UNHEALTHY = "healthy", "unhealthy"


def health(statuses: Sequence[JobStatus], records: Iterable[RunRecord], now: datetime) -> dict[str, Any]:
    """The ``/health`` document of ``statuses`` (ages counted to ``now``) and the history ``records``."""
    current = [replace(status, now=now, next_run=status.job.schedule.next_after(now)) for status in statuses]
    jobs: dict[str, Any] = {}
    worst = 0
    for status in current:
        state, reason = status.check()
        worst = max(worst, state)
        moment, what = status.freshness
        newest = status.newest
        jobs[status.job.name] = {
            "kind": status.job.kind,
            "repository": redact_url(status.job.repository),
            "state": STATE_NAMES[state],
            "reason": reason,
            "newest_good_backup": None
            if newest is None
            else {"backup_id": newest.backup_id, "finished_at": format_time(newest.finished_at)},
            "freshness": {"what": what, "at": None if moment is None else format_time(moment)},
            "age_seconds": None if status.age is None else round(status.age.total_seconds(), 3),
            "max_age_seconds": None if status.job.max_age is None else status.job.max_age.total_seconds(),
            "last_status": None if status.history.last_final is None else status.history.last_final.status,
            "next_run": format_time(status.next_run),
            "repository_error": status.repository_error,
        }
    finals = [record for record in records if record.final and record.status != CANCELLED]
    succeeded = sum(1 for record in finals if record.status == SUCCESS)
    repositories = {repository_key(s.job.repository): s for s in current if s.repository_error is None}
    return {
        "status": UNHEALTHY if worst >= CRITICAL else HEALTHY,
        "checked_at": format_time(now),
        "jobs": jobs,
        "totals": {
            "runs": len(finals),
            "succeeded": succeeded,
            "failed": len(finals) - succeeded,
            "success_rate": None if not finals else round(succeeded / len(finals), 4),
            "backups": sum(s.repository_backups or 0 for s in repositories.values()),
            "stored_bytes": sum(s.repository_stored or 0 for s in repositories.values()),
            "repositories": len(repositories),
        },
    }
