"""The schedule file: what it accepts, and one error line naming file, table and key for each mistake."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest
from backstream import ConfigError, MissingDependencyError
from backstream.retention import Policy
from backstream.schedule import NotifyPolicy, RetryPolicy, load_config, parse_config
from backstream.schedule.commands import child_command, command_args, error_line, parse_output, prune_command

BASE = """
state_dir = "state"
[jobs.nightly]
source = "sqlite:///data/app.db"
repository = "/backups"
schedule = "0 2 * * *"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schedule.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


def test_a_minimal_file_gives_a_backup_job_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE))
    job = config.jobs["nightly"]
    assert job.kind == "backup"
    assert job.schedule.expression == "0 2 * * *"
    assert job.schedule.timezone == "UTC"
    assert job.repository == "/backups"
    assert job.source == "sqlite:///data/app.db"
    assert job.retry == RetryPolicy()
    assert job.retention is None and job.max_age is None and job.timeout is None
    assert job.notify == NotifyPolicy()
    assert config.state_dir == tmp_path / "state"  # relative to the file
    assert config.max_concurrent == 2


def test_every_scheduling_key_is_parsed(tmp_path: Path) -> None:
    text = """
timezone = "Europe/Berlin"
max_concurrent = 3
shutdown_grace = "2m"
[defaults]
repository = "s3://bucket/backups"
storage_options = { endpoint_url = "http://127.0.0.1:9000" }
key_options = { passphrase_file = "/etc/backstream/pass" }
[jobs.nightly]
source = "postgresql://backup@db/app"
encrypt = "passphrase"
compress = "zstd:6"
format = "custom"
schedule = "30 1 * * *"
jitter = "5m"
timeout = "2h"
retries = { attempts = 4, delay = "30s", max_delay = "5m" }
retention = { keep_last = 3, keep_daily = 7, keep_within = "2d" }
max_age = "26h"
warn_age = "25h"
notify = { notifiers = ["webhook", "email"], on = ["failure", "stale"], remind_every = "6h" }
env = { PGPASSWORD = "secret" }
[jobs.drill]
kind = "verify"
schedule = "@weekly"
timezone = "UTC"
[notifiers.webhook]
url = "https://hooks.example.org/backstream"
secret_env = "HOOK_SECRET"
[notifiers.email]
type = "email"
host = "smtp.example.org"
to = ["dba@example.org"]
"""
    config = load_config(write(tmp_path, text))
    assert {name: spec.type for name, spec in config.notifiers.items()} == {"webhook": "webhook", "email": "email"}
    assert config.notifiers["webhook"].options == {
        "url": "https://hooks.example.org/backstream",
        "secret_env": "HOOK_SECRET",
    }
    assert config.max_concurrent == 3 and config.shutdown_grace == timedelta(minutes=2)
    job = config.jobs["nightly"]
    assert job.schedule.timezone == "Europe/Berlin"
    assert job.repository == "s3://bucket/backups"
    assert job.storage_options == {"endpoint_url": "http://127.0.0.1:9000"}
    assert job.jitter == timedelta(minutes=5) and job.timeout == timedelta(hours=2)
    assert job.retry == RetryPolicy(retries=3, delay=timedelta(seconds=30), max_delay=timedelta(minutes=5))
    assert job.retention == Policy(keep_last=3, daily=7, keep_within=timedelta(days=2))
    assert job.max_age == timedelta(hours=26) and job.warn_after == timedelta(hours=25)
    assert job.notify == NotifyPolicy(("webhook", "email"), frozenset({"failure", "stale"}), timedelta(hours=6))
    assert job.env == {"PGPASSWORD": "secret"}
    drill = config.jobs["drill"]
    assert drill.kind == "verify" and drill.schedule.timezone == "UTC"
    assert drill.options == {"backup": "latest", "level": "comprehensive"}
    assert drill.key_options == {"passphrase_file": "/etc/backstream/pass"}


def test_warn_age_defaults_to_80_percent_of_max_age(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE + 'max_age = "10h"\n'))
    assert config.jobs["nightly"].warn_after == timedelta(hours=8)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('schedule = "61 * * * *"', "[jobs.nightly] schedule: '61 * * * *' is not a valid cron expression"),
        ('schedule = "* * *"', "[jobs.nightly] schedule: '* * *' has 3 fields"),
        ('timezone = "Mars/Olympus"', "[jobs.nightly] timezone: unknown time zone 'Mars/Olympus'"),
        ('kind = "restore"', "[jobs.nightly] kind: must be one of backup, verify, check, prune, verify-pitr"),
        ('colour = "blue"', "[jobs.nightly] colour: unknown key for a backup job"),
        ('jitter = "soon"', "[jobs.nightly] jitter: cannot read duration 'soon'"),
        ("timeout = 0", "[jobs.nightly] timeout: must be longer than 0s"),
        ('retries = "three"', "[jobs.nightly] retries: must be a number of retries or a table"),
        ("retries = { delay = '1s' }", "[jobs.nightly.retries] attempts: missing"),
        ("retries = { attempts = 3, delay = '1m', max_delay = '1s' }", "[jobs.nightly.retries] max_delay: must not"),
        ("retention = { keep_forever = 1 }", "[jobs.nightly.retention] keep_forever: unknown key"),
        ("retention = { keep_last = 0 }", "[jobs.nightly.retention] keep_last: must be a positive integer"),
        ("notify = { on = ['failure'] }", "[jobs.nightly.notify] notifiers: missing"),
        ("notify = { notifiers = ['pager'] }", "[jobs.nightly.notify] notifiers: no [notifiers.pager] table"),
        ("[notifiers]\npager = 'loud'", "[notifiers] pager: must be a table ([notifiers.pager])"),
        ("notify = { notifiers = ['x'], on = ['sometimes'] }", "[jobs.nightly.notify] on: unknown event(s) sometimes"),
        ('warn_age = "1h"', "[jobs.nightly] warn_age: needs max_age"),
        ('max_age = "1h"\nwarn_age = "2h"', "[jobs.nightly] warn_age: must be shorter than max_age (1h)"),
        ("key_options = { passphrase = 'x' }", "[jobs.nightly] key_options: unknown key(s) passphrase"),
        ("env = { A = [1] }", "[jobs.nightly.env] A: must be a string, number or boolean, not a list"),
        ('format = "tar"', "[jobs.nightly] format: must be one of plain, custom, directory, not 'tar'"),
    ],
)
def test_a_mistake_is_one_line_naming_file_table_and_key(tmp_path: Path, extra: str, expected: str) -> None:
    text = BASE.replace('schedule = "0 2 * * *"\n', "") if extra.startswith("schedule") else BASE
    assert expected in error_of(tmp_path, text + extra + "\n")


def test_a_job_without_schedule_or_source_or_repository_names_the_missing_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BACKSTREAM_REPO", raising=False)
    assert "[jobs.a] schedule: missing" in error_of(tmp_path, '[jobs.a]\nsource = "sqlite:///x.db"\nrepository = "/r"')
    assert "[jobs.a] source: missing" in error_of(tmp_path, '[jobs.a]\nschedule = "@daily"\nrepository = "/r"')
    assert "[jobs.a] repository: missing" in error_of(tmp_path, '[jobs.a]\nschedule = "@daily"\nsource = "s"')
    assert "[jobs.p] retention: missing" in error_of(
        tmp_path, '[jobs.p]\nkind = "prune"\nschedule = "@daily"\nrepository = "/r"'
    )


def test_top_level_mistakes_name_the_key(tmp_path: Path) -> None:
    assert error_of(tmp_path, "max_concurrent = 0\n").endswith("max_concurrent: must be a positive integer, not 0")
    assert "schedule.toml: jobs: must be a table" in error_of(tmp_path, 'jobs = "x"\n')
    assert "[jobs] nightly: must be a table" in error_of(tmp_path, "[jobs]\nnightly = 1\n")
    assert "is not valid TOML" in error_of(tmp_path, "[jobs.x\n")
    assert "shedule" in error_of(tmp_path, "shedule = 1\n")


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot read schedule file .*missing.toml: No such file"):
        load_config(tmp_path / "missing.toml")


def test_without_croniter_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "croniter", None)  # what an interpreter without it sees
    with pytest.raises(MissingDependencyError, match=r"pip install 'backstream\[schedule\]'"):
        parse_config({"jobs": {"a": {"schedule": "@daily", "source": "s", "repository": "/r"}}})


def table_job(**keys: object) -> object:
    return parse_config({"jobs": {"j": {"repository": "/r", "schedule": "@daily", **keys}}}).jobs["j"]


def test_a_backup_job_runs_the_backup_command_with_its_options() -> None:
    job = table_job(
        source="sqlite:///a.db",
        compress="gzip:6",
        encrypt=["passphrase", "local:/k"],
        format="custom",
        source_options={"busy_timeout": 5},
        storage_options={"anon": False},
        key_options={"passphrase_file": "/p"},
        catalog="off",
    )
    assert command_args(job) == [  # type: ignore[arg-type]
        "backup",
        "sqlite:///a.db",
        "--repo",
        "/r",
        "--compress",
        "gzip:6",
        "--encrypt",
        "passphrase",
        "--encrypt",
        "local:/k",
        "--format",
        "custom",
        "--catalog",
        "off",
        "--option",
        "busy_timeout=5",
        "--storage-option",
        "anon=false",
        "--passphrase-file",
        "/p",
        "--json",
    ]
    assert child_command(job)[:3] == [sys.executable, "-m", "backstream.cli.main"]  # type: ignore[arg-type]


def test_each_kind_runs_its_command() -> None:
    verify = table_job(kind="verify", scratch="/tmp/s")
    assert command_args(verify) == [  # type: ignore[arg-type]
        *["verify", "latest", "--repo", "/r", "--level", "comprehensive", "--scratch", "/tmp/s", "--json"]
    ]
    assert command_args(table_job(kind="check", read_data=True)) == [  # type: ignore[arg-type]
        *["check", "--repo", "/r", "--read-data", "--json"]
    ]
    prune = table_job(kind="prune", retention={"keep_daily": 7, "keep_within": "36h"})
    assert command_args(prune) == [  # type: ignore[arg-type]
        *["prune", "--repo", "/r", "--keep-within", "36h", "--keep-daily", "7", "--json"]
    ]
    pitr = table_job(kind="verify-pitr", source="postgresql://u@h/db", wait=90)
    assert command_args(pitr) == [  # type: ignore[arg-type]
        *["verify-pitr", "postgresql://u@h/db", "--repo", "/r", "--timeout", "90", "--json"]
    ]
    backup = table_job(source="sqlite:///a.db", retention={"keep_last": 2})
    assert prune_command(backup)[3:] == ["prune", "--repo", "/r", "--keep-last", "2", "--json"]  # type: ignore[arg-type]


def test_the_outcome_comes_from_the_json_and_the_error_from_the_one_line() -> None:
    outcome = parse_output("backup", b'{"backup_id": "20260101T000000Z-abcdef", "stored_size": 152}')
    assert (outcome.backup_id, outcome.bytes) == ("20260101T000000Z-abcdef", 152)
    assert parse_output("backup", b"not json").backup_id is None
    assert error_line(b"WARNING x\nbackstream: error: no such file\n", 1) == "no such file"
    assert error_line(b"", 2) == "exited with status 2"
    assert error_line(b"", -9) == "killed by signal 9"
