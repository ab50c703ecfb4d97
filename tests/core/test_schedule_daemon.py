"""``backstream daemon`` as a real subprocess: seconds schedules, retention, retries, limits,
SIGHUP, SIGTERM mid-backup, missed-run catch-up and history across restarts."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

from backstream.repository import utc_now
from backstream.schedule import History, RunRecord
from fixtures.postgres import PostgresServer
from fixtures.processes import descendants
from fixtures.schedule_jobs import backstream, backup_ids, make_db, new_repo
from fixtures.scheduler_daemon import NEVER, Daemon, daemon, receiver, successes, write_config


def test_a_seconds_schedule_runs_sqlite_backups_on_time_and_applies_retention(tmp_path: Path) -> None:
    db = make_db(tmp_path / "app.db")
    repo = new_repo(tmp_path / "repo")
    config, state = write_config(
        tmp_path,
        f"""
[jobs.app]
source = "sqlite://{db}"
repository = "{repo}"
compress = "gzip"
schedule = "*/2 * * * * *"
retention = {{ keep_last = 2 }}
""",
    )
    with daemon(config, state) as running:
        running.wait_for(lambda: len(successes(running.records())) >= 3, "three scheduled backups")
    done = successes(running.records())
    for record in done:
        assert record.trigger == "schedule"
        assert record.scheduled_for.second % 2 == 0 and record.scheduled_for.microsecond == 0
        assert timedelta(0) <= record.started_at - record.scheduled_for < timedelta(seconds=1)
        assert record.backup_id is not None and record.bytes and record.bytes > 0
    slots = [r.scheduled_for for r in done]
    assert len(set(slots)) == len(slots)  # one run per slot
    remaining = backup_ids(repo)
    assert len(remaining) <= 2  # retention ran after each backup
    assert done[-1].backup_id in remaining
    starts = [e for e in running.events() if e["event"] == "job_start"]
    ends = [e for e in running.events() if e["event"] == "job_end"]
    assert starts and ends and {"job", "run_id", "attempt", "trigger"} <= set(starts[0])


def test_a_postgresql_backup_job_runs_on_schedule(
    tmp_path: Path, postgres_server: PostgresServer, postgres_database: str
) -> None:
    with postgres_server.connect(postgres_database) as connection:
        connection.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        connection.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g")
    repo = new_repo(tmp_path / "repo")
    config, state = write_config(
        tmp_path,
        f"""
[jobs.pg]
source = "{postgres_server.url(postgres_database, password=False)}"
repository = "{repo}"
schedule = "*/2 * * * * *"
env = {{ PGPASSWORD = "{postgres_server.password}" }}
""",
    )
    with daemon(config, state) as running:
        running.wait_for(lambda: successes(running.records()), "a PostgreSQL backup", timeout=20)
    record = successes(running.records())[0]
    shown = json.loads(backstream("show", str(record.backup_id), "--repo", str(repo), "--json").stdout)
    assert shown["source"]["kind"].startswith("postgresql")


def test_a_job_whose_source_is_down_is_retried_until_it_succeeds(tmp_path: Path) -> None:
    db = tmp_path / "late.db"  # does not exist yet: the source is down
    repo = new_repo(tmp_path / "repo")
    config, state = write_config(
        tmp_path,
        f"""
[jobs.late]
source = "sqlite://{db}"
repository = "{repo}"
schedule = "{NEVER}"
retries = {{ attempts = 6, delay = "1s", max_delay = "2s" }}
""",
    )
    with daemon(config, state) as running:
        backstream("trigger", "late", "--config", str(config))
        running.wait_for(lambda: running.records(), "the first attempt")
        failed = running.records()[0]
        assert failed.status == "failed" and not failed.final and "late.db" in str(failed.error)
        make_db(db)  # the source comes up
        running.wait_for(lambda: successes(running.records()), "a successful retry")
    records = running.records()
    final = successes(records)[0]
    assert final.final and final.attempt >= 2 and final.run_id == failed.run_id
    gaps = [b.started_at - a.finished_at for a, b in itertools.pairwise(records)]
    assert all(timedelta(seconds=0.5) <= gap < timedelta(seconds=3) for gap in gaps)  # backoff with jitter
    assert "retry" in {e["event"] for e in running.events()}


def overlaps(a: RunRecord, b: RunRecord) -> bool:
    return a.started_at < b.finished_at and b.started_at < a.finished_at


def test_one_job_at_a_time_per_repository_and_at_most_max_concurrent_in_all(tmp_path: Path) -> None:
    db = make_db(tmp_path / "app.db")
    repo_1, repo_2 = new_repo(tmp_path / "repo1"), new_repo(tmp_path / "repo2")
    jobs = "".join(
        f'[jobs.{name}]\nsource = "sqlite://{db}"\nrepository = "{repo}"\nschedule = "{NEVER}"\n'
        for name, repo in (("a", repo_1), ("b", f"file://{repo_1}/"), ("c", repo_2))
    )
    config, state = write_config(tmp_path, jobs, top="max_concurrent = 2")
    for name in ("a", "b", "c"):  # queued before the daemon starts, so all three are due at once
        backstream("trigger", name, "--config", str(config))
    with daemon(config, state) as running:
        running.wait_for(lambda: len(successes(running.records())) == 3, "three runs")
    by_job = {r.job: r for r in running.records()}
    assert not overlaps(by_job["a"], by_job["b"])  # one repository (spelled two ways): one after the other
    assert overlaps(by_job["c"], by_job["a"]) or overlaps(by_job["c"], by_job["b"])  # another: at the same time


def test_max_concurrent_one_runs_jobs_of_different_repositories_one_after_the_other(tmp_path: Path) -> None:
    db = make_db(tmp_path / "app.db")
    repos = [new_repo(tmp_path / f"repo{i}") for i in range(3)]
    jobs = "".join(
        f'[jobs.j{i}]\nsource = "sqlite://{db}"\nrepository = "{repo}"\nschedule = "{NEVER}"\n'
        for i, repo in enumerate(repos)
    )
    config, state = write_config(tmp_path, jobs, top="max_concurrent = 1")
    with daemon(config, state) as running:
        for i in range(3):
            backstream("trigger", f"j{i}", "--config", str(config))
        running.wait_for(lambda: len(successes(running.records())) == 3, "three runs")
    records = running.records()
    assert not any(overlaps(a, b) for a in records for b in records if a is not b)


def test_sighup_with_a_bad_file_keeps_the_old_schedule_and_a_good_one_applies(tmp_path: Path) -> None:
    db = make_db(tmp_path / "app.db")
    repo = new_repo(tmp_path / "repo")
    job = f'source = "sqlite://{db}"\nrepository = "{repo}"\nschedule = "*/2 * * * * *"\n'
    config, state = write_config(tmp_path, f"[jobs.first]\n{job}")
    good = config.read_text()
    with daemon(config, state) as running:
        running.wait_for(lambda: successes(running.records(), "first"), "a first backup")
        config.write_text(good.replace('schedule = "*/2 * * * * *"', 'schedule = "every now and then"'))
        running.signal(signal.SIGHUP)
        running.wait_for(lambda: any(e["event"] == "reload_failed" for e in running.events()), "the failed reload")
        failed = next(e for e in running.events() if e["event"] == "reload_failed")
        assert "[jobs.first] schedule:" in failed["error"]
        before = len(successes(running.records(), "first"))
        running.wait_for(lambda: len(successes(running.records(), "first")) > before, "the old schedule to go on")
        config.write_text(good.replace("[jobs.first]", "[jobs.second]"))
        running.signal(signal.SIGHUP)
        running.wait_for(lambda: successes(running.records(), "second"), "the new job")
        assert running.process.poll() is None


def make_slow_db(path: Path, mib: int = 24) -> Path:
    """Random BLOBs: with bz2 at level 9 its backup takes seconds (long enough to stop it midway)."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE b (x BLOB)")
        connection.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO b SELECT randomblob(1048576) FROM n",
            (mib,),
        )
    connection.close()
    return path


def test_sigterm_mid_backup_cancels_it_cleanly(tmp_path: Path) -> None:
    db = make_slow_db(tmp_path / "big.db")
    repo = new_repo(tmp_path / "repo")
    config, state = write_config(
        tmp_path,
        f"""
[jobs.slow]
source = "sqlite://{db}"
repository = "{repo}"
compress = "bz2:9"
schedule = "{NEVER}"
""",
        top='shutdown_grace = 0.5\nkill_after = "10s"',
    )
    running = Daemon(config, state)
    backstream("trigger", "slow", "--config", str(config))
    running.wait_for(lambda: list((repo / "locks").glob("*.json")), "the backup to hold the repository lock")
    time.sleep(0.5)
    children = descendants(running.process.pid)
    assert children
    started = time.monotonic()
    assert running.stop() == 0
    assert time.monotonic() - started < 5  # the grace, then a clean cancel: no SIGKILL after kill_after
    assert not list((repo / "locks").glob("*"))  # the lock is released
    assert backup_ids(repo) == []  # nothing half-listed
    assert not list((repo / "backups").rglob("*.partial"))
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
    (record,) = running.records()
    assert record.status == "cancelled" and record.final
    assert backstream("check", "--repo", str(repo), check=False).returncode == 0


def test_missed_runs_after_downtime_run_once_at_start(tmp_path: Path) -> None:
    db = make_db(tmp_path / "app.db")
    repo = new_repo(tmp_path / "repo")
    config, state = write_config(
        tmp_path, f'[jobs.hourly]\nsource = "sqlite://{db}"\nrepository = "{repo}"\nschedule = "0 * * * *"\n'
    )
    day_ago = utc_now() - timedelta(days=1)
    History(state).append(  # the daemon last ran a day ago: 24 slots were missed
        RunRecord("hourly", "backup", "old", 1, "schedule", day_ago, day_ago, day_ago, "success", True)
    )
    with daemon(config, state) as running:
        running.wait_for(lambda: len(running.records()) >= 2, "the catch-up run")
        time.sleep(2)
    new = running.records()[1:]
    assert len(new) == 1
    assert new[0].trigger == "catch-up" and new[0].ok
    assert new[0].scheduled_for <= day_ago + timedelta(hours=1)  # the first missed slot
    assert sum(e["event"] == "catch_up" for e in running.events()) == 1


def test_the_history_survives_a_restart(tmp_path: Path) -> None:
    db = make_db(tmp_path / "app.db")
    repo = new_repo(tmp_path / "repo")
    config, state = write_config(
        tmp_path, f'[jobs.app]\nsource = "sqlite://{db}"\nrepository = "{repo}"\nschedule = "{NEVER}"\n'
    )
    with daemon(config, state) as running:
        backstream("trigger", "app", "--config", str(config))
        running.wait_for(lambda: successes(running.records()), "a run")
    first = running.records()
    with daemon(config, state) as again:
        result = backstream("trigger", "app", "--config", str(config), "--wait", "15", "--json")
        assert json.loads(result.stdout)["status"] == "success"
    records = again.records()
    assert records[: len(first)] == first and len(records) == len(first) + 1
    status = json.loads(backstream("status", "--config", str(config), "--json").stdout)
    (job,) = status["jobs"]
    assert job["last_success"]["backup_id"] == records[-1].backup_id
    assert job["newest_backup"]["backup_id"] == records[-1].backup_id


def test_a_second_daemon_on_the_same_state_directory_is_refused(tmp_path: Path) -> None:
    config, state = write_config(tmp_path, "")
    with daemon(config, state) as running:
        second = backstream("daemon", "--config", str(config), check=False)
        assert second.returncode != 0
        assert f"another daemon (pid {running.process.pid}) already uses the state directory" in second.stderr
        assert "Traceback" not in second.stderr


def test_trigger_without_a_daemon_queues_and_warns(tmp_path: Path) -> None:
    config, state = write_config(
        tmp_path, f'[jobs.a]\nsource = "sqlite:///x.db"\nrepository = "/r"\nschedule = "{NEVER}"\n'
    )
    result = backstream("trigger", "a", "--config", str(config))
    assert "no daemon runs on" in result.stderr
    assert len(os.listdir(state / "triggers")) == 1
    unknown = backstream("trigger", "b", "--config", str(config), check=False)
    assert unknown.returncode != 0 and "no job named 'b'" in unknown.stderr


def test_a_failing_job_notifies_once_and_its_recovery_once(tmp_path: Path) -> None:
    """Notifications end to end: a real HTTP receiver, the webhook notifier of a [notifiers] table,
    a job whose database appears only later. Many failed runs make one failure message; the first
    good run makes one recovery message."""
    with receiver() as (port, received):
        db = tmp_path / "later.db"
        repo = new_repo(tmp_path / "repo")
        config, state = write_config(
            tmp_path,
            f"""
[notifiers.ops]
type = "webhook"
url = "http://127.0.0.1:{port}/hook"
secret = "s"

[jobs.app]
source = "sqlite://{db}"
repository = "{repo}"
schedule = "* * * * * *"
notify = {{ notifiers = ["ops"], on = ["failure", "recovery"] }}
""",
        )
        with daemon(config, state) as running:
            running.wait_for(lambda: sum(not r.ok for r in running.records()) >= 3, "three failed runs")
            make_db(db)
            running.wait_for(lambda: successes(running.records()), "a good run")
            running.wait_for(lambda: len(received) >= 2, "the recovery message")
            time.sleep(1.5)  # later good runs must stay silent
    assert [message["event"] for message in received] == ["failure", "recovery"]
    assert received[0]["job"] == "app" and "later.db" in received[0]["error"]
    assert (state / "notify-state.json").is_file()
