"""What ``backstream status`` reports per job, and the Nagios-style freshness check of ``--check``.

Run outcomes come from the state directory's history; the newest good backup and the log
archives' lag come from the repository itself (its manifests and archive records), so a backup
made by hand counts as much as a scheduled one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio

from backstream.errors import BackstreamError
from backstream.plugins import Plugins
from backstream.repository import Manifest, Repository, format_time, redact_url, utc_now
from backstream.repository.archive_stats import archive_stats
from backstream.retention import format_duration
from backstream.schedule.config import JobSpec, ScheduleConfig, repository_key
from backstream.schedule.history import History, JobHistory, RunRecord, summarize

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


@dataclass(frozen=True)
class RepositoryView:
    """What one repository says: its good manifests and each log archive's lag, or why it could not be read."""

    manifests: tuple[Manifest, ...] = ()
    archive_ends: dict[str, datetime] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class JobStatus:
    """One job's status at ``now``."""

    job: JobSpec
    now: datetime
    next_run: datetime
    history: JobHistory
    newest: Manifest | None = None
    archive_ends: dict[str, datetime] = field(default_factory=dict)
    repository_error: str | None = None
    repository_stored: int | None = None
    """Stored bytes of every good backup in the job's repository (None: unreadable)."""
    repository_backups: int | None = None
    """How many good backups the job's repository holds (None: unreadable)."""

    @property
    def last_success(self) -> RunRecord | None:
        return self.history.last_success

    @property
    def last_failure(self) -> RunRecord | None:
        return self.history.last_failure

    @property
    def freshness(self) -> tuple[datetime | None, str]:
        """When the job last did its work and what that is: a backup job's newest good backup in
        the repository; for other kinds, the last successful run in the history."""
        if self.job.kind == "backup":
            return (None if self.newest is None else self.newest.finished_at), "newest good backup"
        success = self.history.last_success
        return (None if success is None else success.finished_at), f"last successful {self.job.kind}"

    @property
    def age(self) -> timedelta | None:
        moment, _ = self.freshness
        return None if moment is None else self.now - moment

    def archive_lag(self) -> dict[str, timedelta]:
        return {name: self.now - end for name, end in self.archive_ends.items()}

    def check(self) -> tuple[int, str]:
        """This job's state for ``status --check`` and the sentence saying why."""
        job = self.job
        moment, what = self.freshness
        if job.max_age is None:
            return OK, f"{job.name}: no max_age"
        if moment is None:
            reason = f"repository unreadable: {self.repository_error}" if self.repository_error else f"no {what}"
            return CRITICAL, f"{job.name}: {reason}"
        age = self.now - moment
        text = f"{job.name}: {what} {format_duration(_whole(age))} old"
        if age > job.max_age:
            return CRITICAL, f"{text} (max_age {format_duration(job.max_age)})"
        warn = job.warn_after
        if warn is not None and age > warn:
            return WARNING, f"{text} (warn at {format_duration(_whole(warn))})"
        return OK, text

    def to_dict(self) -> dict[str, Any]:
        moment, what = self.freshness
        return {
            "job": self.job.name,
            "kind": self.job.kind,
            "schedule": self.job.schedule.expression,
            "timezone": self.job.schedule.timezone,
            "repository": redact_url(self.job.repository),
            "next_run": format_time(self.next_run),
            "last_success": _record(self.last_success),
            "last_failure": _record(self.last_failure),
            "last_status": None if self.history.last_final is None else self.history.last_final.status,
            "newest_backup": None
            if self.newest is None
            else {"backup_id": self.newest.backup_id, "finished_at": format_time(self.newest.finished_at)},
            "freshness": {"what": what, "at": None if moment is None else format_time(moment)},
            "age_seconds": None if self.age is None else round(self.age.total_seconds(), 3),
            "max_age_seconds": None if self.job.max_age is None else self.job.max_age.total_seconds(),
            "archive_lag_seconds": {name: round(lag.total_seconds(), 3) for name, lag in self.archive_lag().items()},
            "repository_error": self.repository_error,
        }


def _whole(delta: timedelta) -> timedelta:
    return timedelta(seconds=int(delta.total_seconds()))


def _record(record: RunRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "at": format_time(record.finished_at),
        "status": record.status,
        "backup_id": record.backup_id,
        "bytes": record.bytes,
        "error": record.error,
    }


async def job_statuses(
    config: ScheduleConfig,
    *,
    plugins: Plugins | None = None,
    now: datetime | None = None,
    records: Sequence[RunRecord] | None = None,
) -> list[JobStatus]:
    """Every job's status: history from the state directory (or ``records``, read from it
    already), backups and archives from each repository (read once per repository, concurrently)."""
    moment = now or utc_now()
    if records is None:
        history = History(config.state_dir)
        records = await anyio.to_thread.run_sync(lambda: list(history.records()))
    summary = summarize(records)
    plugins = plugins or Plugins.load()
    views: dict[str, RepositoryView] = {}
    firsts = {repository_key(job.repository): job for job in config.jobs.values()}

    async def read(key: str, job: JobSpec) -> None:
        views[key] = await repository_view(job, plugins)

    async with anyio.create_task_group() as tg:
        for key, job in firsts.items():
            tg.start_soon(read, key, job)
    statuses = []
    for job in config.jobs.values():
        view = views[repository_key(job.repository)]
        statuses.append(
            JobStatus(
                job=job,
                now=moment,
                next_run=job.schedule.next_after(moment),
                history=summary.get(job.name, JobHistory()),
                newest=newest_backup(job, view.manifests),
                archive_ends=view.archive_ends,
                repository_error=view.error,
                repository_stored=None if view.error else sum(m.stored_size for m in view.manifests),
                repository_backups=None if view.error else len(view.manifests),
            )
        )
    return statuses


async def repository_view(job: JobSpec, plugins: Plugins) -> RepositoryView:
    """The good manifests and archive ends of ``job``'s repository (an unreadable one says why)."""
    try:
        storage = plugins.open_storage(job.repository, **dict(job.storage_options))
        repository = await Repository.open(storage)
        manifests = tuple(m for m in await repository.manifests() if m.ok)
        archives = await archive_stats(repository, plugins.log_archives())
    except BackstreamError as exc:
        return RepositoryView(error=str(exc))
    ends = {a.name: a.window.end for a in archives if a.window is not None}
    return RepositoryView(manifests=manifests, archive_ends=ends)


def newest_backup(job: JobSpec, manifests: Sequence[Manifest]) -> Manifest | None:
    """The newest good backup of ``job``'s source (None for jobs that make no backups)."""
    if job.kind != "backup" or job.source is None:
        return None
    source = redact_url(job.source)
    mine = [m for m in manifests if m.source.url == source]
    return max(mine, key=lambda m: m.finished_at, default=None)


def nagios(statuses: Sequence[JobStatus]) -> tuple[int, str]:
    """The exit status and the one Nagios plugin line: ``BACKSTREAM OK - ... | perfdata``."""
    checked = [(status, *status.check()) for status in statuses]
    worst = max((state for _, state, _ in checked), default=OK)
    problems = [text for _, state, text in checked if state != OK]
    if not statuses:
        summary = "no jobs"
    elif problems:
        summary = "; ".join(problems)
    else:
        watched = [status for status in statuses if status.job.max_age is not None]
        summary = f"{len(watched)} of {len(statuses)} jobs fresh" if watched else "no job has a max_age"
    perf = [_perfdata(status) for status in statuses if status.job.max_age is not None]
    line = f"BACKSTREAM {STATE_NAMES[worst]} - {summary}"
    if perf:
        line += " | " + " ".join(perf)
    return worst, line


def _perfdata(status: JobStatus) -> str:
    """``'name_age'=SECONDSs;WARN;CRIT;0`` (the age empty when unknown: Nagios' ``U``)."""
    job = status.job
    age = "U" if status.age is None else f"{int(status.age.total_seconds())}s"
    warn = "" if job.warn_after is None else str(int(job.warn_after.total_seconds()))
    crit = "" if job.max_age is None else str(int(job.max_age.total_seconds()))
    label = job.name.replace("'", "_").replace("=", "_")
    return f"'{label}_age'={age};{warn};{crit};0"
