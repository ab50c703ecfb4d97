"""What the daemon tells people, and when (``backstream.notify.Notifications``).

The first failure is sent; the same failure again is not, until ``remind_every`` has passed (a
reminder) or the job recovers (a recovery); a different error is news. Successes are sent only
when asked for. What was told survives a restart (``notify-state.json``). A channel that fails
is counted and never fails anything else.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from backstream import BackstreamError, ConfigError, JobFailed, JobFinished, Plugins
from backstream.notify import Notification, Notifications, configured_channels
from backstream.schedule.config import NotifierSpec
from backstream.schedule.notify import NotifyPolicy

START = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


class Recorder:
    """A channel that keeps what it was sent (or fails, when told to)."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[Notification] = []
        self.fail = fail

    async def send(self, notification: Notification) -> None:
        if self.fail:
            raise BackstreamError("the channel is down")
        self.sent.append(notification)


class Clock:
    def __init__(self) -> None:
        self.now = START.timestamp()

    def __call__(self) -> float:
        return self.now


def failed(error: str = "pg_dump: connection refused", run: str = "r1") -> JobFailed:
    details = {"job": "nightly", "kind": "backup", "status": "failed", "attempts": 3}
    return JobFailed(run, "backup", START, START + timedelta(seconds=5), error, details=details)


def finished(run: str = "r2") -> JobFinished:
    details = {"job": "nightly", "kind": "backup", "status": "success", "backup_id": "B1", "bytes": 1024}
    return JobFinished(run, "backup", START, START + timedelta(seconds=5), details=details)


POLICY = NotifyPolicy(("hook",))
REMINDING = NotifyPolicy(("hook",), remind_every=timedelta(hours=6))


def deliver(sink: Notifications, *events: JobFailed | JobFinished, policy: NotifyPolicy = POLICY) -> None:
    async def main() -> None:
        for event in events:
            await sink.deliver("nightly", policy, event)

    anyio.run(main)


@pytest.fixture
def hook() -> Recorder:
    return Recorder()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sink(hook: Recorder, clock: Clock, tmp_path: Path) -> Notifications:
    return Notifications({"hook": hook}, tmp_path, clock=clock, host="db1")


def events(hook: Recorder) -> list[str]:
    return [n.event for n in hook.sent]


def test_the_first_failure_is_sent_with_its_error_and_the_run(sink: Notifications, hook: Recorder) -> None:
    deliver(sink, failed())
    (sent,) = hook.sent
    assert (sent.event, sent.job, sent.error, sent.attempts, sent.host) == (
        "failure",
        "nightly",
        "pg_dump: connection refused",
        3,
        "db1",
    )
    assert sent.subject == "[backstream] nightly failed on db1: pg_dump: connection refused"


def test_the_same_failure_again_is_not_sent(sink: Notifications, hook: Recorder) -> None:
    deliver(sink, failed(run="r1"), failed(run="r2"), failed(run="r3"))
    assert events(hook) == ["failure"]


def test_a_different_error_is_news(sink: Notifications, hook: Recorder) -> None:
    deliver(sink, failed("disk full"), failed("disk full"), failed("permission denied"))
    assert [(n.event, n.error) for n in hook.sent] == [("failure", "disk full"), ("failure", "permission denied")]


def test_a_reminder_after_remind_every_while_it_keeps_failing(
    sink: Notifications, hook: Recorder, clock: Clock
) -> None:
    deliver(sink, failed(), policy=REMINDING)
    clock.now += 5 * 3600
    deliver(sink, failed(), policy=REMINDING)
    clock.now += 3600
    deliver(sink, failed(), policy=REMINDING)
    assert events(hook) == ["failure", "reminder"]
    assert hook.sent[1].subject.startswith("[backstream] nightly is still failing on db1")


def test_the_first_success_after_failures_is_a_recovery_and_then_silence(sink: Notifications, hook: Recorder) -> None:
    deliver(sink, failed(), finished(), finished())
    assert events(hook) == ["failure", "recovery"]
    assert hook.sent[1].failing_since == hook.sent[0].finished_at
    deliver(sink, failed())
    assert events(hook) == ["failure", "recovery", "failure"]


def test_successes_are_sent_only_when_asked_for(sink: Notifications, hook: Recorder) -> None:
    deliver(sink, finished())
    assert events(hook) == []
    deliver(sink, finished(), policy=NotifyPolicy(("hook",), on=frozenset({"success", "failure"})))
    assert events(hook) == ["success"]
    assert (hook.sent[0].backup_id, hook.sent[0].bytes) == ("B1", 1024)


def test_a_job_without_notifiers_sends_nothing(sink: Notifications, hook: Recorder) -> None:
    deliver(sink, failed(), policy=NotifyPolicy())
    assert hook.sent == []


def test_what_was_told_survives_a_restart(hook: Recorder, clock: Clock, tmp_path: Path) -> None:
    deliver(Notifications({"hook": hook}, tmp_path, clock=clock), failed())
    restarted = Notifications({"hook": hook}, tmp_path, clock=clock)
    deliver(restarted, failed())  # the same failure after a restart: not sent again
    deliver(restarted, finished())
    assert events(hook) == ["failure", "recovery"]
    assert (tmp_path / "notify-state.json").is_file()


def test_an_unreadable_state_file_starts_afresh(hook: Recorder, clock: Clock, tmp_path: Path) -> None:
    (tmp_path / "notify-state.json").write_text("{ torn")
    deliver(Notifications({"hook": hook}, tmp_path, clock=clock), failed())
    assert events(hook) == ["failure"]


def test_a_failing_channel_is_counted_and_the_others_still_get_it(clock: Clock, tmp_path: Path) -> None:
    good, bad = Recorder(), Recorder(fail=True)
    sink = Notifications({"good": good, "bad": bad}, tmp_path, clock=clock)
    deliver(sink, failed(), policy=NotifyPolicy(("bad", "good")))
    assert events(good) == ["failure"]
    assert (sink.failed, sink.sent) == ({"bad": 1}, {"good": 1})


def test_configured_channels_come_from_the_notifier_plugins() -> None:
    specs = {"ops": NotifierSpec("ops", "webhook", {"url": "http://127.0.0.1:9/hook"}, where="s.toml")}
    assert set(configured_channels(specs, Plugins.load())) == {"ops"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (NotifierSpec("x", "pager", {}, "s.toml"), "s.toml: [notifiers.x] "),
        (NotifierSpec("x", "webhook", {}, "s.toml"), "s.toml: [notifiers.x] url: missing"),
        (
            NotifierSpec("x", "webhook", {"url": "ftp://h"}, "s.toml"),
            "[notifiers.x] url: must be an http:// or https:// URL",
        ),
        (
            NotifierSpec("x", "webhook", {"url": "http://h", "colour": 1}, "s.toml"),
            "unknown option(s) for a webhook notifier: colour",
        ),
        (
            NotifierSpec("x", "webhook", {"url": "http://h", "secret_env": "NO_SUCH_VAR_X"}, "s.toml"),
            "secret_env: the environment variable NO_SUCH_VAR_X is not set",
        ),
        (NotifierSpec("x", "email", {"host": "h", "from": "a@b"}, "s.toml"), "[notifiers.x] to: missing"),
        (
            NotifierSpec(
                "x", "email", {"host": "h", "from": "a@b", "to": ["c@d"], "starttls": False, "username": "u"}, "s.toml"
            ),
            "username: logging in without TLS",
        ),
    ],
)
def test_a_bad_notifier_table_is_one_config_error_naming_it(spec: NotifierSpec, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configured_channels({"x": spec}, Plugins.load())
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
