"""The seam between the scheduler and the notifiers: a job's notify policy and the sink that delivers.

The scheduler parses each job's ``notify`` table into a ``NotifyPolicy`` and hands every finished
run to an ``EventSink``; deciding what to send (repeats, recoveries, reminders) is the sink's work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from backstream.events import JobFailed, JobFinished

if TYPE_CHECKING:
    from backstream.schedule.status import JobStatus

NOTIFY_ON = frozenset({"failure", "success", "recovery", "stale"})
"""What a job may ask to be notified about."""
DEFAULT_ON = frozenset({"failure", "recovery"})


@dataclass(frozen=True)
class NotifyPolicy:
    """Which notifiers (by the names they are registered under) hear about a job, and on what."""

    notifiers: tuple[str, ...] = ()
    on: frozenset[str] = DEFAULT_ON
    remind_every: timedelta | None = None
    """Send a failure again after this long while the job keeps failing (None: once until it recovers)."""

    @property
    def enabled(self) -> bool:
        return bool(self.notifiers)


@runtime_checkable
class EventSink(Protocol):
    """Receives the end of every scheduled run (after its last attempt) with the job's policy.

    ``event.details`` holds ``job``, ``kind``, ``run_id``, ``attempts``, ``trigger``, ``backup_id``,
    ``bytes`` and ``previous_status`` (the status of the job's run before this one, or None), enough
    to tell a recovery from a repeated failure. A sink must not raise: the scheduler logs and drops
    what it raises."""

    async def deliver(self, job: str, policy: NotifyPolicy, event: JobFinished | JobFailed) -> None: ...


@runtime_checkable
class StatusObserver(Protocol):
    """An ``EventSink`` may also watch the jobs' statuses: the scheduler passes each snapshot it
    takes (every ``status_interval`` and after each run) to ``observe``, which sends ``stale``
    notices. Like ``deliver``, it must not raise."""

    async def observe(self, statuses: Sequence[JobStatus]) -> None: ...
