"""Notifications: what the daemon tells people about its runs, and when.

``Notifications`` is the scheduler's ``EventSink``. For each finished run it decides, from the
job's ``NotifyPolicy`` and what it told last time, whether there is news: the first failure (or a
failure with a different error), a reminder while the job keeps failing (``remind_every``), the
recovery (the first success after failures), or a success when asked for. Repeated identical
failures are not sent again. From the daemon's status snapshots (``observe``) it sends ``stale``
once per staleness: when a job's newest good backup (other kinds: last success) is older than
its ``max_age``; a newer backup ends that staleness. What it last told per job is kept in ``notify-state.json`` in the
daemon's state directory, so a restart neither repeats nor forgets. A channel that fails is
logged and counted; it never fails the job.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from backstream.errors import BackstreamError, ConfigError
from backstream.events import JobFailed, JobFinished
from backstream.plugins import Plugins
from backstream.protocols import NotificationChannel
from backstream.repository.ids import format_time
from backstream.schedule.config import NotifierSpec
from backstream.schedule.notify import NotifyPolicy

if TYPE_CHECKING:
    from backstream.schedule.status import JobStatus

log = logging.getLogger(__name__)

STATE_FILE = "notify-state.json"
FAILURE, REMINDER, RECOVERY, SUCCESS, STALE = "failure", "reminder", "recovery", "success", "stale"


@dataclass(frozen=True)
class Notification:
    """One message about one run, or (``stale``) about a job's age. ``event`` is failure,
    reminder, recovery, success or stale."""

    event: str
    job: str
    kind: str
    status: str
    error: str | None
    run_id: str
    backup_id: str | None
    bytes: int | None
    attempts: int | None
    started_at: str
    finished_at: str
    host: str
    failing_since: str | None = None

    @property
    def subject(self) -> str:
        """``[backstream] app-nightly failed on db1: <error>`` and the like."""
        what = {
            FAILURE: "failed",
            REMINDER: "is still failing",
            RECOVERY: "recovered",
            SUCCESS: "succeeded",
            STALE: "is stale",
        }[self.event]
        line = f"[backstream] {self.job} {what} on {self.host}"
        return f"{line}: {self.error}" if self.error and self.event in (FAILURE, REMINDER, STALE) else line

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "subject": self.subject}


@dataclass
class _JobState:
    failing: bool = False
    error: str | None = None
    failing_since: str | None = None
    last_sent: float = 0.0
    stale_for: str | None = None
    """The freshness time (newest good backup) whose staleness was sent already."""


class Notifications:
    """The daemon's event sink over configured channels (by the name jobs use in ``notify``).

    ``clock`` returns seconds since the epoch (a test passes its own). ``sent`` and ``failed``
    count deliveries per channel name."""

    def __init__(
        self,
        channels: Mapping[str, NotificationChannel],
        state_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        host: str | None = None,
    ) -> None:
        self.channels = dict(channels)
        self.path = Path(state_dir) / STATE_FILE
        self.clock = clock
        self.host = host or socket.gethostname()
        self.sent: dict[str, int] = {}
        self.failed: dict[str, int] = {}
        self._states = self._load()

    async def deliver(self, job: str, policy: NotifyPolicy, event: JobFinished | JobFailed) -> None:
        if not policy.enabled:
            return
        state = self._states.setdefault(job, _JobState())
        now = self.clock()
        news = self._news(state, policy, event, now)
        when = format_time(event.failed_at if isinstance(event, JobFailed) else event.finished_at)
        if isinstance(event, JobFailed):
            if not state.failing:
                state.failing_since = when
            state.failing, state.error = True, event.error
        else:
            state.failing, state.error = False, None
        if news is None:
            await anyio.to_thread.run_sync(self._save)
            return
        notification = self._notification(news, job, event, state.failing_since, when)
        if not state.failing:
            state.failing_since = None
        state.last_sent = now
        await anyio.to_thread.run_sync(self._save)  # before sending: a crash mid-send does not resend
        for name in policy.notifiers:
            await self._send(name, notification)

    async def observe(self, statuses: Sequence[JobStatus]) -> None:
        """Send ``stale`` for each job that asks for it (``notify.on``, ``max_age``) and is older
        than ``max_age``, once per staleness. A job that never did its work (no backup yet) is
        left to its failure notices and ``status --check``."""
        changed = False
        for status in statuses:
            job = status.job
            policy = job.notify
            if not policy.enabled or "stale" not in policy.on or job.max_age is None:
                continue
            state = self._states.setdefault(job.name, _JobState())
            moment, _ = status.freshness
            age = status.age
            if moment is None or age is None or age <= job.max_age:
                changed |= state.stale_for is not None
                state.stale_for = None
                continue
            fresh_at = format_time(moment)
            if state.stale_for == fresh_at:
                continue  # sent already
            _, reason = status.check()
            state.stale_for, state.last_sent, changed = fresh_at, self.clock(), True
            notification = Notification(
                event=STALE,
                job=job.name,
                kind=job.kind,
                status="stale",
                error=reason.removeprefix(f"{job.name}: "),
                run_id="",
                backup_id=None if status.newest is None else status.newest.backup_id,
                bytes=None if status.newest is None else status.newest.stored_size,
                attempts=None,
                started_at=fresh_at,
                finished_at=fresh_at,
                host=self.host,
            )
            await anyio.to_thread.run_sync(self._save)  # before sending: a crash mid-send does not resend
            for name in policy.notifiers:
                await self._send(name, notification)
        if changed:
            await anyio.to_thread.run_sync(self._save)

    def _news(self, state: _JobState, policy: NotifyPolicy, event: JobFinished | JobFailed, now: float) -> str | None:
        if isinstance(event, JobFailed):
            if "failure" not in policy.on:
                return None
            if not state.failing or state.error != event.error:
                return FAILURE
            if policy.remind_every is not None and now - state.last_sent >= policy.remind_every.total_seconds():
                return REMINDER
            return None
        if state.failing:
            return RECOVERY if "recovery" in policy.on else None
        return SUCCESS if "success" in policy.on else None

    def _notification(
        self, news: str, job: str, event: JobFinished | JobFailed, failing_since: str | None, when: str
    ) -> Notification:
        details = event.details
        size = details.get("bytes")
        attempts = details.get("attempts")
        return Notification(
            event=news,
            job=job,
            kind=str(details.get("kind") or event.kind),
            status=str(details.get("status") or ("failed" if isinstance(event, JobFailed) else "success")),
            error=event.error if isinstance(event, JobFailed) else None,
            run_id=event.job_id,
            backup_id=None if details.get("backup_id") is None else str(details["backup_id"]),
            bytes=None if size is None else int(size),
            attempts=None if attempts is None else int(attempts),
            started_at=format_time(event.started_at),
            finished_at=when,
            host=self.host,
            failing_since=failing_since,
        )

    async def _send(self, name: str, notification: Notification) -> None:
        channel = self.channels.get(name)
        try:
            if channel is None:
                raise BackstreamError(f"no notifier named {name!r} is configured")
            await channel.send(notification)
        except Exception as exc:  # a notifier never fails the job, nor the daemon
            self.failed[name] = self.failed.get(name, 0) + 1
            log.warning("notifier %s could not send %s of %s: %s", name, notification.event, notification.job, exc)
            return
        self.sent[name] = self.sent.get(name, 0) + 1

    def _load(self) -> dict[str, _JobState]:
        try:
            document = json.loads(self.path.read_text())
            return {str(job): _JobState(**dict(state)) for job, state in dict(document["jobs"]).items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring unreadable %s (%s): notifications start afresh", self.path, exc)
            return {}

    def _save(self) -> None:
        document = {"format": "backstream-notify-state", "jobs": {job: asdict(s) for job, s in self._states.items()}}
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "w") as handle:
                json.dump(document, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("cannot save %s: %s", self.path, exc)
            temporary.unlink(missing_ok=True)


def configured_channels(specs: Mapping[str, NotifierSpec], plugins: Plugins) -> dict[str, NotificationChannel]:
    """The channels of a schedule file's ``[notifiers.NAME]`` tables, made by the notifier plugins;
    an unknown type or a bad option is one ConfigError naming the table."""
    channels: dict[str, NotificationChannel] = {}
    for name, spec in specs.items():
        try:
            channels[name] = plugins.notifiers().get(spec.type).create(spec.options)
        except BackstreamError as exc:
            raise ConfigError(f"{spec.where}: [notifiers.{name}] {exc}") from None
    return channels
