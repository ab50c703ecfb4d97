"""``backstream metrics``: the scheduled jobs' Prometheus metrics, from real runs.

A schedule with a good SQLite backup job, a failing one and a verify drill is run through
``backstream trigger`` (no daemon needed); the metrics are written as node_exporter's textfile,
parsed with prometheus_client's own parser, and their values checked against the history and the
repository. The shipped alert rules may name only metrics that are exported.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from backstream.schedule import History
from backstream.schedule.metrics import METRICS
from fixtures.schedule_jobs import CLI, backstream, make_db, new_repo
from fixtures.scheduler_daemon import good_and_bad_jobs, samples

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def scheduled(tmp_path: Path) -> tuple[Path, Path, Path]:
    db = make_db(tmp_path / "app.db")
    repo = new_repo(tmp_path / "repo")
    config = tmp_path / "schedule.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n' + good_and_bad_jobs(tmp_path, db, repo))
    daemon = subprocess.Popen([*CLI, "daemon", "--config", str(config)], stderr=subprocess.DEVNULL)
    try:
        for job in ("good", "good", "bad"):
            backstream("trigger", job, "--config", str(config), "--wait", "60", check=False)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
    return config, repo, tmp_path


def test_the_textfile_holds_what_the_runs_did(scheduled: tuple[Path, Path, Path]) -> None:
    config, repo, tmp_path = scheduled
    out = tmp_path / "textfile"
    out.mkdir()
    backstream("metrics", "--config", str(config), "--textfile", str(out))
    values = samples((out / "backstream.prom").read_text())
    records = [r for r in History(tmp_path / "state").records() if r.final]
    good = [r for r in records if r.job == "good" and r.ok]
    assert len(good) == 2 and any(r.job == "bad" and not r.ok for r in records)
    place = str(repo)  # the repository label is the URL as the schedule file gives it (redacted)
    job = (("job", "good"), ("kind", "backup"), ("repository", place))
    assert values[("backstream_last_success_timestamp_seconds", job)] == pytest.approx(good[-1].finished_at.timestamp())
    assert values[("backstream_last_run_success", job)] == 1
    assert values[("backstream_last_run_success", (("job", "bad"), ("kind", "backup"), ("repository", place)))] == 0
    assert values[("backstream_job_runs_total", (("job", "good"), ("status", "success")))] == 2
    assert values[("backstream_max_age_seconds", job)] == 3600
    assert values[("backstream_freshness_timestamp_seconds", job)] == pytest.approx(
        good[-1].finished_at.timestamp(), abs=5
    )
    stored = values[("backstream_backup_bytes", (("job", "good"), ("kind", "stored"), ("repository", place)))]
    assert stored > 0
    assert values[("backstream_repository_stored_bytes", (("repository", place),))] == pytest.approx(
        2 * stored, rel=0.1
    )
    assert values[("backstream_repository_up", (("job", "good"), ("repository", place)))] == 1


def test_without_textfile_the_metrics_are_printed(scheduled: tuple[Path, Path, Path]) -> None:
    config, _, _ = scheduled
    text = backstream("metrics", "--config", str(config)).stdout
    assert "# TYPE backstream_job_runs_total counter" in text


def test_a_textfile_directory_that_does_not_exist_is_one_line(scheduled: tuple[Path, Path, Path]) -> None:
    config, _, tmp_path = scheduled
    result = backstream("metrics", "--config", str(config), "--textfile", str(tmp_path / "nowhere"), check=False)
    assert result.returncode != 0 and "is not a directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_exported_metric_is_documented() -> None:
    text = (ROOT / "docs" / "scheduling.md").read_text()
    assert [name for name in METRICS if name not in text] == []


def test_the_alert_rules_name_only_exported_metrics() -> None:
    document = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert rules and all(rule["alert"] and rule["expr"] for rule in rules)
    named = {name for rule in rules for name in re.findall(r"\bbackstream_[a-z_]+", rule["expr"])}
    assert named and named <= set(METRICS)
    assert any("absent(" in rule["expr"] for rule in rules), "a job that never ran must still alert"


def test_the_grafana_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "backstream.json").read_text())
    panels = dashboard["panels"]
    expressions = [target["expr"] for panel in panels for target in panel["targets"]]
    variables = [variable["definition"] for variable in dashboard["templating"]["list"] if "definition" in variable]
    named = {name for text in expressions + variables for name in re.findall(r"\bbackstream_[a-z_]+", text)}
    assert named <= set(METRICS), f"not exported: {sorted(named - set(METRICS))}"
    assert len(named) >= len(METRICS) - 1, f"metrics without a panel: {sorted(set(METRICS) - named)}"
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)) and all(panel["datasource"]["uid"] == "${datasource}" for panel in panels)
