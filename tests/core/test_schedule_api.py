"""The scheduler from Python: ``Scheduler(config)``, ``add_job``, the event sink and the lifecycle hooks;
and the history file on its own."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import anyio
import backstream
import pytest
from backstream import JobFailed, JobFinished, JobStarted, Plugins, hookimpl
from backstream.repository import utc_now
from backstream.schedule import History, NotifyPolicy, RunRecord, ScheduleConfig, Scheduler
from backstream.schedule.logline import EventLog
from fixtures.schedule_jobs import make_db, new_repo


class Recorder:
    """A sink and a plugin at once: what the scheduler told each."""

    def __init__(self, *, fail: bool = False) -> None:
        self.delivered: list[tuple[str, NotifyPolicy, JobFinished | JobFailed]] = []
        self.hooks: list[object] = []
        self.fail = fail

    async def deliver(self, job: str, policy: NotifyPolicy, event: JobFinished | JobFailed) -> None:
        self.delivered.append((job, policy, event))
        if self.fail:
            raise RuntimeError("the notifier is down")

    @hookimpl
    def backstream_job_started(self, event: JobStarted) -> None:
        self.hooks.append(event)

    @hookimpl
    def backstream_job_finished(self, event: JobFinished) -> None:
        self.hooks.append(event)

    @hookimpl
    def backstream_job_failed(self, event: JobFailed) -> None:
        self.hooks.append(event)


async def run_until(scheduler: Scheduler, done: object, count: int) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(scheduler.run)
        with anyio.fail_after(20):
            while len(done) < count:  # type: ignore[arg-type]
                await anyio.sleep(0.05)
        scheduler.stop()


def test_the_public_api_runs_added_jobs_and_reports_to_the_sink_and_the_hooks(tmp_path: Path) -> None:
    assert backstream.Scheduler is Scheduler
    db = make_db(tmp_path / "app.db")
    repo = new_repo(tmp_path / "repo")
    recorder = Recorder(fail=True)  # a failing sink is logged, never fatal
    log_path = tmp_path / "events.log"
    with open(log_path, "w") as stream:
        scheduler = Scheduler(
            ScheduleConfig(jobs={}, state_dir=tmp_path / "state"),
            sink=recorder,
            plugins=Plugins.load(extra_plugins=[recorder]),
            event_log=EventLog("json", stream),
        )
        notify = {"notifiers": ["webhook"], "on": ["failure", "recovery"], "remind_every": "1h"}
        good = scheduler.add_job(
            "good", schedule="0 0 1 1 *", source=f"sqlite://{db}", repository=str(repo), notify=notify
        )
        scheduler.add_job("bad", schedule="0 0 1 1 *", source=f"sqlite://{tmp_path}/none.db", repository=str(repo))
        scheduler.trigger("good")
        scheduler.trigger("bad")
        anyio.run(run_until, scheduler, recorder.delivered, 2)
    by_job = {job: (policy, event) for job, policy, event in recorder.delivered}
    policy, finished = by_job["good"]
    assert policy == good.notify == NotifyPolicy(("webhook",), frozenset({"failure", "recovery"}), timedelta(hours=1))
    assert isinstance(finished, JobFinished) and finished.kind == "backup"
    assert finished.details["job"] == "good" and finished.details["backup_id"]
    assert finished.details["previous_status"] is None and finished.details["trigger"] == "manual"
    _, failed = by_job["bad"]
    assert isinstance(failed, JobFailed) and "none.db" in failed.error
    assert {type(e) for e in recorder.hooks} == {JobStarted, JobFinished, JobFailed}
    assert "notify_error" in log_path.read_text()
    assert {r.job for r in History(tmp_path / "state").records()} == {"good", "bad"}


def test_add_job_validates_like_the_schedule_file(tmp_path: Path) -> None:
    scheduler = Scheduler(ScheduleConfig(jobs={}, state_dir=tmp_path))
    with pytest.raises(backstream.ConfigError, match=r"^add_job: \[jobs.x\] schedule: missing"):
        scheduler.add_job("x", source="sqlite:///a.db", repository="/r")
    with pytest.raises(backstream.ConfigError, match="no job named 'y'"):
        scheduler.trigger("y")


def record(job: str, status: str, *, final: bool = True) -> RunRecord:
    now = utc_now()
    return RunRecord(job, "backup", "r", 1, "schedule", now, now, now + timedelta(seconds=2), status, final)


def test_the_history_is_appended_and_read_back_by_a_new_instance(tmp_path: Path) -> None:
    History(tmp_path).append(record("a", "success"))
    History(tmp_path).append(record("a", "failed"))
    History(tmp_path).append(record("a", "cancelled"))
    summary = History(tmp_path).summary()["a"]
    assert summary.last_success is not None and summary.last_success.status == "success"
    assert summary.last_failure is not None and summary.last_failure.status == "failed"  # a cancel is no failure
    assert summary.last is not None and summary.last.status == "cancelled"
    assert (tmp_path / "history.jsonl").stat().st_mode & 0o777 == 0o600


def test_a_torn_last_line_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    history = History(tmp_path)
    history.append(record("a", "success"))
    with open(history.path, "a") as handle:
        handle.write('{"job": "a", "kind": "bac')  # a crash mid-write
    assert [r.status for r in history.records()] == ["success"]
    assert "unreadable history line" in caplog.text
