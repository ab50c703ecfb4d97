"""The daemon's HTTP endpoints, from a real ``backstream daemon`` subprocess: ``/metrics`` scraped
over HTTP and parsed with prometheus_client's parser (values match the runs and the repository),
``/health`` healthy and then unhealthy as a backup grows older than ``max_age``, ``/health/live``,
stale notices once per staleness, and the errors a user can cause."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from fixtures.schedule_jobs import backstream, make_db, new_repo
from fixtures.scheduler_daemon import (
    NEVER,
    Daemon,
    daemon,
    good_and_bad_jobs,
    receiver,
    samples,
    successes,
    write_config,
)

HTTP = 'http_address = "127.0.0.1:0"\nstatus_interval = "1s"'


def url_of(running: Daemon) -> str:
    running.wait_for(lambda: any(e["event"] == "http_listen" for e in running.events()), "the HTTP server")
    return next(e["url"] for e in running.events() if e["event"] == "http_listen")


def get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def listed(repo: Path) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(backstream("list", "--repo", str(repo), "--json").stdout)
    return entries


def test_metrics_scraped_over_http_match_the_runs(tmp_path: Path) -> None:
    db = make_db(tmp_path / "app.db")
    repo = new_repo(tmp_path / "repo")
    config, state = write_config(tmp_path, good_and_bad_jobs(tmp_path, db, repo), top=HTTP)
    with daemon(config, state) as running:
        base = url_of(running)
        for job in ("good", "good", "bad"):
            backstream("trigger", job, "--config", str(config), "--wait", "60", check=False)

        def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            status, kind, body = get(base + "/metrics")
            return samples(body) if status == 200 and kind.startswith("text/plain") else {}

        runs = ("backstream_job_runs_total", (("job", "bad"), ("status", "failed")))
        running.wait_for(lambda: scraped().get(runs) == 1, "the failed run in /metrics")
        values = scraped()
        records = [r for r in running.records() if r.final]
    good = successes(records, "good")
    assert len(good) == 2
    place = str(repo)
    job = (("job", "good"), ("kind", "backup"), ("repository", place))
    assert values[("backstream_job_runs_total", (("job", "good"), ("status", "success")))] == 2
    assert values[("backstream_last_success_timestamp_seconds", job)] == pytest.approx(good[-1].finished_at.timestamp())
    assert values[("backstream_last_run_success", job)] == 1
    assert values[("backstream_last_run_success", (("job", "bad"), ("kind", "backup"), ("repository", place)))] == 0
    assert values[("backstream_max_age_seconds", job)] == 3600
    assert not [name for name, _ in values if name.endswith("_created")], "history counts have no creation time"
    backups = listed(repo)
    newest = max(backups, key=lambda entry: entry["finished_at"])
    assert newest["backup_id"] == good[-1].backup_id
    stored = ("backstream_backup_bytes", (("job", "good"), ("kind", "stored"), ("repository", place)))
    source = ("backstream_backup_bytes", (("job", "good"), ("kind", "source"), ("repository", place)))
    assert values[stored] == newest["stored_size"] and values[source] == newest["plaintext_size"]
    total = sum(entry["stored_size"] for entry in backups)
    assert values[("backstream_repository_stored_bytes", (("repository", place),))] == total


def test_health_says_healthy_then_unhealthy_when_the_newest_backup_is_older_than_max_age(tmp_path: Path) -> None:
    db = make_db(tmp_path / "app.db")
    repo = new_repo(tmp_path / "repo")
    config, state = write_config(
        tmp_path,
        f"""
[jobs.app]
source = "sqlite://{db}"
repository = "{repo}"
schedule = "{NEVER}"
max_age = "3s"
""",
        top=HTTP,
    )
    with daemon(config, state) as running:
        base = url_of(running)
        running.wait_for(lambda: "jobs" in json.loads(get(base + "/health")[2]), "the first snapshot")
        status, kind, body = get(base + "/health")
        assert status == 503 and kind == "application/json"  # no backup yet: critical
        assert json.loads(body)["jobs"]["app"]["reason"] == "app: no newest good backup"
        backstream("trigger", "app", "--config", str(config), "--wait", "60")
        running.wait_for(lambda: get(base + "/health")[0] == 200, "a healthy /health")
        document = json.loads(get(base + "/health")[2])
        newest = listed(repo)[0]
        assert document["status"] == "healthy"
        app = document["jobs"]["app"]
        assert app["state"] == "OK" and app["last_status"] == "success" and app["max_age_seconds"] == 3
        assert app["newest_good_backup"] == {"backup_id": newest["backup_id"], "finished_at": newest["finished_at"]}
        assert 0 <= app["age_seconds"] < 3
        assert document["totals"] == {
            "runs": 1,
            "succeeded": 1,
            "failed": 0,
            "success_rate": 1.0,
            "backups": 1,
            "stored_bytes": newest["stored_size"],
            "repositories": 1,
        }
        running.wait_for(lambda: get(base + "/health")[0] == 503, "the backup to go stale", timeout=10)
        stale = json.loads(get(base + "/health")[2])
        assert stale["status"] == "unhealthy" and stale["jobs"]["app"]["state"] == "CRITICAL"
        assert stale["jobs"]["app"]["age_seconds"] > 3
        live_status, _, live = get(base + "/health/live")
        assert live_status == 200 and json.loads(live)["status"] == "alive"  # stale is not hung
        assert get(base + "/nowhere")[0] == 404
        request = urllib.request.Request(base + "/health", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405


def test_a_stale_backup_is_notified_once_per_staleness(tmp_path: Path) -> None:
    db = make_db(tmp_path / "app.db")
    repo = new_repo(tmp_path / "repo")
    with receiver() as (port, received):
        config, state = write_config(
            tmp_path,
            f"""
status_interval = 0.5
[notifiers.ops]
type = "webhook"
url = "http://127.0.0.1:{port}/hook"
[jobs.app]
source = "sqlite://{db}"
repository = "{repo}"
schedule = "{NEVER}"
max_age = "2s"
notify = {{ notifiers = ["ops"], on = ["stale"] }}
""",
        )
        with daemon(config, state) as running:
            backstream("trigger", "app", "--config", str(config), "--wait", "60")
            running.wait_for(lambda: received, "a stale notice", timeout=10)
            time.sleep(2)  # more snapshots of the same staleness send nothing
            assert len(received) == 1
            first_backup = listed(repo)[0]["backup_id"]
            backstream("trigger", "app", "--config", str(config), "--wait", "60")
            running.wait_for(lambda: len(received) == 2, "the next staleness", timeout=10)
        restarted_quiet = len(received)
        with daemon(config, state):
            time.sleep(2)  # the restarted daemon knows it sent this one
        assert len(received) == restarted_quiet
    first, second = received
    assert first["event"] == "stale" and first["job"] == "app" and first["backup_id"] == first_backup
    assert "newest good backup" in first["error"] and "max_age 2s" in first["error"]
    assert first["subject"].startswith("[backstream] app is stale on ")
    assert second["backup_id"] != first_backup


def test_a_port_in_use_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        config, _ = write_config(tmp_path, "", top=f'http_address = "127.0.0.1:{taken.getsockname()[1]}"')
        result = backstream("daemon", "--config", str(config), check=False)
    finally:
        taken.close()
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "http_address" in result.stderr and "cannot listen" in result.stderr


@pytest.mark.parametrize("address", ["9811", "localhost:", "localhost:http", "[::1]:70000"])
def test_a_bad_http_address_names_the_key(tmp_path: Path, address: str) -> None:
    config, _ = write_config(tmp_path, "", top=f'http_address = "{address}"')
    result = backstream("daemon", "--config", str(config), "--check-config", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "http_address" in result.stderr and "HOST:PORT" in result.stderr
    good, _ = write_config(tmp_path / "good", "") if (tmp_path / "good").mkdir() is None else (config, None)
    flag = backstream("daemon", "--config", str(good), "--http-address", address, "--check-config", check=False)
    assert flag.returncode != 0 and "--http-address" in flag.stderr


def test_check_config_names_the_address(tmp_path: Path) -> None:
    config, _ = write_config(tmp_path, "", top='http_address = "[::1]:9811"')
    result = backstream("daemon", "--config", str(config), "--check-config")
    assert "serving ::1:9811" in result.stdout
