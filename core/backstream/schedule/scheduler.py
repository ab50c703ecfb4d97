"""The scheduler: runs each job at its cron times, one run per job at a time, as child processes.

Limits: ``max_concurrent`` runs in all, one at a time per repository (the next waits its turn).
Missed slots after downtime run once at start; triggers, reloads and a graceful stop are handled
here; ``backstream daemon`` is this with signal handling (docs/scheduling.md).
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import secrets
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import anyio

from backstream.errors import BackstreamError, ConfigError
from backstream.events import JobFailed, JobFinished, JobStarted
from backstream.plugins import Plugins
from backstream.repository.ids import utc_now
from backstream.repository.urls import redact_url
from backstream.schedule.child import ChildResult, run_child
from backstream.schedule.commands import child_command, error_line, parse_output, prune_command
from backstream.schedule.config import (
    JobSpec,
    ScheduleConfig,
    default_state_dir,
    job_from_table,
    load_config,
    repository_key,
)
from backstream.schedule.history import CANCELLED, FAILED, SUCCESS, TIMEOUT, History, RunRecord, summarize
from backstream.schedule.logline import EventLog
from backstream.schedule.notify import EventSink, StatusObserver
from backstream.schedule.triggers import Trigger, take

if TYPE_CHECKING:
    from backstream.schedule.http import StatusServer

log = logging.getLogger(__name__)

LOCK_FILE = "daemon.lock"


@dataclass(frozen=True)
class _Run:
    """One run of a job: why it started and the slot it is for."""

    job: JobSpec
    run_id: str
    trigger: str
    scheduled_for: datetime
    trigger_id: str | None = None


class Scheduler:
    """Runs the jobs of a ``ScheduleConfig`` until ``stop()`` (or SIGTERM with ``handle_signals``).

    ``await Scheduler(load_config("daemon.toml")).run()``; jobs can be added before ``run`` with
    ``add_job``. Each finished run goes to the plugins' ``backstream_job_*`` hooks and to ``sink``."""

    def __init__(
        self,
        config: ScheduleConfig | None = None,
        *,
        sink: EventSink | None = None,
        plugins: Plugins | None = None,
        event_log: EventLog | None = None,
    ) -> None:
        self.config = config or ScheduleConfig(jobs={}, state_dir=default_state_dir())
        self.jobs: dict[str, JobSpec] = dict(self.config.jobs)
        self.history = History(self.config.state_dir)
        self.sink = sink
        self._plugins = plugins
        self.log = event_log or EventLog()
        self._rng = random.Random()
        self._queued: dict[str, list[Trigger | None]] = {}
        self._started = False
        self._stop_requested = False
        self._reload_requested: ScheduleConfig | None = None
        self.server: StatusServer | None = None
        """The ``/metrics`` and ``/health`` server while ``run`` serves (with ``http_address``)."""
        self._status_due = anyio.Event()

    # --- configuration ----------------------------------------------------------------------

    def add_job(self, job: JobSpec | str, /, **keys: Any) -> JobSpec:
        """Add (or replace) a job: a ``JobSpec``, or a name and the keys of a ``[jobs.NAME]`` table
        (``add_job("nightly", schedule="@daily", source="sqlite:///...", repository="/backups")``)."""
        if isinstance(job, JobSpec):
            spec = job
        else:
            spec = job_from_table(job, keys, where="add_job", timezone=self.config.timezone)
        self.jobs[spec.name] = spec
        if self._started:
            self._restart_loops()
        return spec

    def reload(self, config: ScheduleConfig) -> None:
        """Use ``config``'s jobs and limits from now on; running jobs finish as they were."""
        if config.state_dir != self.config.state_dir:
            self.log.emit("reload_note", {"message": "state_dir changes take effect at the next start"})
            config = replace(config, state_dir=self.config.state_dir)
        if config.http_address != self.config.http_address:
            self.log.emit("reload_note", {"message": "http_address changes take effect at the next start"})
            config = replace(config, http_address=self.config.http_address)
        self.config = config
        self.jobs = dict(config.jobs)
        if self._started:
            self._limiter.total_tokens = config.max_concurrent
            self._restart_loops()

    def trigger(self, name: str, trigger: Trigger | None = None) -> None:
        """Run job ``name`` as soon as it is free (once per call)."""
        if name not in self.jobs:
            raise ConfigError(f"no job named {name!r} (jobs: {', '.join(sorted(self.jobs)) or 'none'})")
        self._queued.setdefault(name, []).append(trigger)
        if self._started:
            self._wake(name).set()

    def stop(self) -> None:
        """Start no more jobs; let running ones finish within ``shutdown_grace``, then cancel them."""
        self._stop_requested = True
        if self._started:
            self._stopping.set()

    @property
    def plugins(self) -> Plugins:
        if self._plugins is None:
            self._plugins = Plugins.load()
        return self._plugins

    # --- the main loop ------------------------------------------------------------------------

    async def run(self, *, handle_signals: bool = False) -> None:
        """Run until stopped. With ``handle_signals``: SIGTERM/SIGINT stop, SIGHUP reloads the
        schedule file (a bad file keeps the jobs running as they are, and says why). With the
        config's ``http_address``, ``/metrics`` and ``/health`` are served there meanwhile."""
        with self._single_daemon():
            address = self.config.http_address
            if address is None:
                await self._serve(handle_signals)
                return
            from backstream.schedule.http import StatusServer  # here: it imports the repository layer

            server = StatusServer(address)
            await anyio.to_thread.run_sync(server.start)
            self.server = server
            self.log.emit("http_listen", {"url": server.url, "paths": "/metrics /health /health/live"})
            try:
                await self._serve(handle_signals)
            finally:
                self.server = None
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(server.close)

    async def _serve(self, handle_signals: bool) -> None:
        self._stopping = anyio.Event()
        self._limiter = anyio.CapacityLimiter(self.config.max_concurrent)
        self._repo_locks: dict[str, anyio.Lock] = {}
        self._wakes: dict[str, anyio.Event] = {}
        self._running: dict[str, anyio.Event] = {}
        self._waiting: set[anyio.CancelScope] = set()
        self._cancelled: dict[str, RunRecord] = {}
        self._loop_scopes: list[anyio.CancelScope] = []
        summary = summarize(await anyio.to_thread.run_sync(lambda: list(self.history.records())))
        self._last_status = {name: job.last_final.status for name, job in summary.items() if job.last_final}
        self._last_slots = {name: job.last.scheduled_for for name, job in summary.items() if job.last}
        self._started = True
        if self._stop_requested:
            self._stopping.set()
        self.log.emit("daemon_start", {"jobs": len(self.jobs), "state_dir": str(self.config.state_dir)})
        async with anyio.create_task_group() as signals:
            if handle_signals:
                signals.start_soon(self._signals)  # to the very end: a second SIGTERM must not kill us mid-cleanup
            async with anyio.create_task_group() as runs:
                self._runs = runs
                async with anyio.create_task_group() as control:
                    self._control = control
                    control.start_soon(self._poll_triggers)
                    control.start_soon(self._watch_statuses)
                    if self.server is not None:
                        control.start_soon(self._heartbeat, self.server)
                    self._restart_loops(catch_up=True)
                    await self._stopping.wait()
                    control.cancel_scope.cancel()
                for scope in self._waiting:
                    scope.cancel()
                grace = self.config.shutdown_grace.total_seconds()
                self.log.emit("daemon_stopping", {"running": len(self._running), "grace_seconds": grace})
                with anyio.move_on_after(grace):
                    while self._running:
                        await next(iter(self._running.values())).wait()
                runs.cancel_scope.cancel()
            signals.cancel_scope.cancel()
        self._started = False
        self.log.emit("daemon_stop", {})

    @contextmanager
    def _single_daemon(self) -> Iterator[None]:
        """One daemon per state directory: an exclusive ``flock`` on ``daemon.lock`` (holding our pid)."""
        state = Path(self.config.state_dir)
        try:
            state.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle: IO[str] = open(state / LOCK_FILE, "a+", encoding="ascii")
        except OSError as exc:
            raise ConfigError(f"cannot use the state directory {state}: {exc.strerror or exc}") from exc
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                pid = handle.read().strip() or "?"
                raise ConfigError(f"another daemon (pid {pid}) already uses the state directory {state}") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as received:
            async for number in received:
                if number == signal.SIGHUP and not self._stopping.is_set():
                    await self._reload_file()
                elif self._stopping.is_set():
                    self.log.emit("signal", {"signal": signal.Signals(number).name, "action": "already stopping"})
                else:
                    self.log.emit("signal", {"signal": signal.Signals(number).name, "action": "stop"})
                    self.stop()

    async def _reload_file(self) -> None:
        path = self.config.path
        if path is None:
            self.log.emit("reload_failed", {"error": "the schedule came from no file"})
            return
        try:
            config = await anyio.to_thread.run_sync(load_config, path)
        except BackstreamError as exc:
            self.log.emit("reload_failed", {"error": str(exc), "kept_jobs": len(self.jobs)})
            return
        self.reload(config)
        self.log.emit("reload", {"jobs": len(self.jobs), "config": path})

    async def _poll_triggers(self) -> None:
        while True:
            for trigger in await anyio.to_thread.run_sync(take, self.config.state_dir):
                try:
                    self.trigger(trigger.job, trigger)
                except ConfigError as exc:
                    self.log.emit("trigger_ignored", {"trigger_id": trigger.trigger_id, "error": str(exc)})
            await anyio.sleep(self.config.trigger_poll)

    # --- status snapshots: /metrics, /health, stale notices ---------------------------------------

    def _watches(self) -> bool:
        """Whether anything uses status snapshots: the HTTP server, or a job asking for ``stale``."""
        if self.server is not None:
            return True
        if not isinstance(self.sink, StatusObserver):
            return False
        return any(job.max_age and job.notify.enabled and "stale" in job.notify.on for job in self.jobs.values())

    async def _watch_statuses(self) -> None:
        """Take a status snapshot at start, after each finished run and every ``status_interval``."""
        while True:
            self._status_due = anyio.Event()
            if self._watches():
                await self._take_snapshot()
            with anyio.move_on_after(self.config.status_interval.total_seconds()):
                await self._status_due.wait()

    async def _take_snapshot(self) -> None:
        from backstream.schedule.http import StatusSnapshot
        from backstream.schedule.status import job_statuses

        config = replace(self.config, jobs=dict(self.jobs))
        try:
            records = tuple(await anyio.to_thread.run_sync(lambda: list(self.history.records())))
            statuses = tuple(await job_statuses(config, plugins=self.plugins, records=records))
        except Exception as exc:  # an unreadable history must not stop the daemon
            self.log.emit("status_error", {"error": str(exc) or type(exc).__name__})
            return
        if self.server is not None:
            snapshot = StatusSnapshot(statuses=statuses, records=records, taken_at=utc_now())
            await anyio.to_thread.run_sync(self.server.publish, snapshot)
        if isinstance(self.sink, StatusObserver):
            try:
                await self.sink.observe(statuses)
            except Exception as exc:  # a notifier never stops the daemon
                self.log.emit("notify_error", {"error": str(exc) or type(exc).__name__})

    async def _heartbeat(self, server: StatusServer) -> None:
        while True:
            server.beat()
            await anyio.sleep(1)

    # --- one job's loop -------------------------------------------------------------------------

    def _restart_loops(self, *, catch_up: bool = False) -> None:
        for scope in self._loop_scopes:
            scope.cancel()
        self._loop_scopes = []
        now = utc_now()
        for job in self.jobs.values():
            missed = None
            last = self._last_slots.get(job.name)
            if catch_up and last is not None:
                due = job.schedule.next_after(last)
                missed = due if due <= now else None
            scope = anyio.CancelScope()
            self._loop_scopes.append(scope)
            self._control.start_soon(self._job_loop, job, scope, missed)

    def _wake(self, name: str) -> anyio.Event:
        if name not in self._wakes:
            self._wakes[name] = anyio.Event()
        return self._wakes[name]

    async def _job_loop(self, job: JobSpec, scope: anyio.CancelScope, missed: datetime | None) -> None:
        with scope:
            if job.name in self._running:  # a run from before a reload: let it end first
                await self._running[job.name].wait()
            if self._queued.get(job.name):
                self._wake(job.name).set()
            if missed is not None:
                self.log.emit("catch_up", {"job": job.name, "missed_slot": missed})
                await self._start_run(job, "catch-up", missed)
            last_slot = self._last_slots.get(job.name)
            while True:
                now = utc_now()
                slot = job.schedule.next_after(now if last_slot is None or last_slot < now else last_slot)
                delay = (slot - now).total_seconds() + self._rng.uniform(0, job.jitter.total_seconds())
                wake = self._wake(job.name)
                with anyio.move_on_after(max(delay, 0)):
                    await wake.wait()
                if wake.is_set():
                    self._wakes[job.name] = anyio.Event()
                    for trigger in self._queued.pop(job.name, []):
                        await self._start_run(
                            job, "manual", utc_now(), trigger_id=None if trigger is None else trigger.trigger_id
                        )
                    continue
                last_slot = slot
                await self._start_run(job, "schedule", slot)

    async def _start_run(self, job: JobSpec, trigger: str, slot: datetime, *, trigger_id: str | None = None) -> None:
        """Start a run in the runs' task group (a reload must not cancel it) and wait for its end."""
        if self._stopping.is_set():
            await anyio.sleep_forever()
        self._last_slots[job.name] = slot
        done = anyio.Event()
        self._running[job.name] = done
        run = _Run(job, f"{utc_now().strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}", trigger, slot, trigger_id)
        self._runs.start_soon(self._execute, run, done)
        await done.wait()

    # --- one run: attempts, retries, retention, events --------------------------------------------

    async def _execute(self, run: _Run, done: anyio.Event) -> None:
        job = run.job
        started = utc_now()
        record: RunRecord | None = None
        try:
            attempt = 1
            while True:
                record = await self._attempt(run, attempt)
                if record is None:  # stopping before it could start
                    return
                if record.final:
                    break
                backoff = job.retry.backoff(attempt, self._rng)
                self.log.emit("retry", {"job": job.name, "run_id": run.run_id, "in_seconds": round(backoff, 1)})
                with anyio.move_on_after(backoff):
                    await self._stopping.wait()
                if self._stopping.is_set():
                    record = await self._record(run, attempt + 1, utc_now(), CANCELLED, "stopped before the retry")
                    break
                attempt += 1
        finally:
            self._running.pop(job.name, None)
            done.set()
            record = self._cancelled.pop(run.run_id, record)
            if record is not None:
                with anyio.CancelScope(shield=True):
                    await self._finished(run, started, record)

    async def _attempt(self, run: _Run, attempt: int) -> RunRecord | None:
        """One attempt under the repository's turn and a concurrency slot; None if stopped first."""
        job = run.job
        lock = self._repo_locks.setdefault(repository_key(job.repository), anyio.Lock())
        waiting = anyio.CancelScope()
        self._waiting.add(waiting)
        acquired = False
        with waiting:
            await lock.acquire()
            try:
                await self._limiter.acquire()
            except BaseException:
                lock.release()
                raise
            acquired = True
        self._waiting.discard(waiting)
        if not acquired:
            self.log.emit("not_started", {"job": job.name, "run_id": run.run_id, "reason": "stopping"})
            return None
        try:
            return await self._attempt_locked(run, attempt)
        finally:
            self._limiter.release()
            lock.release()

    async def _attempt_locked(self, run: _Run, attempt: int) -> RunRecord:
        job = run.job
        started = utc_now()
        self.log.emit(
            "job_start",
            {"job": job.name, "kind": job.kind, "run_id": run.run_id, "attempt": attempt, "trigger": run.trigger},
        )
        if attempt == 1:
            self.plugins.job_started(JobStarted(run.run_id, job.kind, started, details=self._details(run)))
        status, error, backup_id, size = SUCCESS, None, None, None
        try:
            result = await self._child(child_command(job), job)
            outcome = parse_output(job.kind, result.stdout)
            backup_id, size = outcome.backup_id, outcome.bytes
            if result.timed_out:
                status, error = TIMEOUT, f"timed out after {job.timeout}"
            elif result.returncode != 0:
                status, error = FAILED, error_line(result.stderr, result.returncode)
            elif job.kind == "backup" and job.retention is not None:
                pruned = await self._child(prune_command(job), job)
                if pruned.returncode != 0 or pruned.timed_out:
                    reason = "timed out" if pruned.timed_out else error_line(pruned.stderr, pruned.returncode)
                    status, error = FAILED, f"backup {backup_id} succeeded, but retention failed: {reason}"
                    return await self._record(run, attempt, started, status, error, backup_id, size, final=True)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                self._cancelled[run.run_id] = await self._record(
                    run, attempt, started, CANCELLED, "cancelled at shutdown", final=True
                )
            raise
        except OSError as exc:  # the interpreter could not be started
            status, error = FAILED, f"cannot start the job: {exc}"
        final = status == SUCCESS or attempt > job.retry.retries or self._stopping.is_set()
        return await self._record(run, attempt, started, status, error, backup_id, size, final=final)

    async def _child(self, argv: list[str], job: JobSpec) -> ChildResult:
        timeout = None if job.timeout is None else job.timeout.total_seconds()
        return await run_child(argv, env=job.env, timeout=timeout, kill_after=self.config.kill_after.total_seconds())

    async def _record(
        self,
        run: _Run,
        attempt: int,
        started: datetime,
        status: str,
        error: str | None,
        backup_id: str | None = None,
        size: int | None = None,
        *,
        final: bool = True,
    ) -> RunRecord:
        record = RunRecord(
            job=run.job.name,
            kind=run.job.kind,
            run_id=run.run_id,
            attempt=attempt,
            trigger=run.trigger,
            scheduled_for=run.scheduled_for,
            started_at=started,
            finished_at=utc_now(),
            status=status,
            final=final,
            backup_id=backup_id,
            bytes=size,
            error=error,
            trigger_id=run.trigger_id,
        )
        try:
            await anyio.to_thread.run_sync(self.history.append, record)
        except ConfigError as exc:
            self.log.emit("history_error", {"error": str(exc)})
        self.log.emit(
            "job_end",
            {
                "job": record.job,
                "kind": record.kind,
                "run_id": record.run_id,
                "attempt": attempt,
                "status": status,
                "final": final,
                "duration_seconds": round(record.duration_seconds, 3),
                "backup_id": backup_id,
                "bytes": size,
                "error": error,
            },
        )
        return record

    async def _finished(self, run: _Run, started: datetime, record: RunRecord) -> None:
        job = run.job
        details = {
            **self._details(run),
            "attempts": record.attempt,
            "status": record.status,
            "backup_id": record.backup_id,
            "bytes": record.bytes,
            "previous_status": self._last_status.get(job.name),
        }
        self._last_status[job.name] = record.status
        event: JobFinished | JobFailed
        if record.ok:
            event = JobFinished(run.run_id, job.kind, started, record.finished_at, details=details)
            self.plugins.job_finished(event)
        else:
            event = JobFailed(run.run_id, job.kind, started, record.finished_at, record.error or "", details=details)
            self.plugins.job_failed(event)
        self._status_due.set()
        if self.sink is not None and record.status != CANCELLED:  # a shutdown is no news
            try:
                await self.sink.deliver(job.name, job.notify, event)
            except Exception as exc:  # a notifier never fails the job, nor the daemon
                self.log.emit("notify_error", {"job": job.name, "error": str(exc) or type(exc).__name__})

    def _details(self, run: _Run) -> dict[str, Any]:
        job = run.job
        details: dict[str, Any] = {
            "job": job.name,
            "kind": job.kind,
            "run_id": run.run_id,
            "trigger": run.trigger,
            "scheduled_for": run.scheduled_for,
            "repository": redact_url(job.repository),
        }
        if job.source is not None:
            details["source"] = redact_url(job.source)
        return details


def daemon_pid(state_dir: Path) -> int | None:
    """The pid of the daemon holding ``state_dir`` (None when none runs there)."""
    path = Path(state_dir) / LOCK_FILE
    try:
        with open(path, encoding="ascii") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = handle.read().strip()
                return int(text) if text.isdigit() else -1
            return None
    except FileNotFoundError:
        return None


def next_runs(config: ScheduleConfig, *, now: datetime | None = None) -> dict[str, datetime]:
    """Each job's next scheduled time after ``now``."""
    moment = now or utc_now()
    return {name: job.schedule.next_after(moment) for name, job in config.jobs.items()}
