"""The ``backstream`` command line with SQLite: init, backup, restore, list, show, delete, stats, run, demo.

Every command runs as a real subprocess; user errors must end in one line on stderr, a non-zero exit
and no traceback; ``--json`` output must parse; ``kill -9`` during a backup must commit nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.s3 import S3Bucket
from fixtures.sqlite_db import file_sha256, make_awkward_db, make_random_db, table_checksums

ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
FAST_KDF = ["--kdf-param", "t=1", "--kdf-param", "m=1024", "--kdf-param", "p=1"]


def make_env(directory: Path) -> dict[str, str]:
    """The environment for the CLI: no inherited repository, a private audit log and temp dir."""
    scratch = directory / "tmp"
    scratch.mkdir()
    environment = {k: v for k, v in os.environ.items() if k not in ("BACKSTREAM_REPO", "BACKSTREAM_PASSPHRASE")}
    environment.update(BACKSTREAM_AUDIT_LOG=str(directory / "audit.log"), TMPDIR=str(scratch))
    return environment


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return make_env(tmp_path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str, Path]:
    """One environment, repository and database for tests that change nothing (error cases)."""
    directory = tmp_path_factory.mktemp("shared")
    environment = make_env(directory)
    url = str(directory / "repo")
    cli("init", "--repo", url, env=environment)
    return environment, url, make_awkward_db(directory / "awkward.db", blob_mib=1)


def cli(
    *args: str, env: dict[str, str], check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "backstream.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"backstream {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("backstream: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def sqlite_url(path: Path) -> str:
    return f"sqlite://{path.absolute()}"


@pytest.fixture
def repo(tmp_path: Path, env: dict[str, str]) -> str:
    url = str(tmp_path / "repo")
    cli("init", "--repo", url, env=env)
    return url


def backup_id(repo: str, source: Path, env: dict[str, str], *extra: str) -> str:
    out = cli("backup", sqlite_url(source), "--repo", repo, *extra, env=env).stdout.strip()
    assert ID.match(out), out
    return out


def listed_ids(repo: str, env: dict[str, str]) -> list[str]:
    return [row["backup_id"] for row in json.loads(cli("list", "--repo", repo, "--json", env=env).stdout)]


# --- the main path -----------------------------------------------------------------------------


def test_init_creates_a_repository_and_prints_it(tmp_path: Path, env: dict[str, str]) -> None:
    result = cli("init", "--repo", str(tmp_path / "r"), "--json", env=env)
    created = json.loads(result.stdout)
    assert created["format_version"] == 1
    assert (tmp_path / "r" / "backstream.json").is_file()


def test_init_refuses_a_memory_repository_that_would_vanish_with_the_process(env: dict[str, str]) -> None:
    result = cli("init", "--repo", "memory://scratch/repo", env=env, check=False)
    assert result.returncode == 2
    assert_one_line_error(result, "memory://scratch/repo", "vanish when init exits", "Python API")


def test_backup_prints_only_the_new_id_and_no_progress_when_not_a_terminal(
    awkward_db: Path, repo: str, env: dict[str, str]
) -> None:
    result = cli("backup", sqlite_url(awkward_db), "--repo", repo, env=env)
    assert ID.match(result.stdout.strip())
    assert result.stdout.count("\n") == 1
    assert result.stderr == ""


def test_backup_json_holds_the_backup_id(awkward_db: Path, repo: str, env: dict[str, str]) -> None:
    result = cli("backup", sqlite_url(awkward_db), "--repo", repo, "--compress", "zstd:1", "--json", env=env)
    summary = json.loads(result.stdout)
    assert ID.match(summary["backup_id"])
    assert summary["codec"] == "zstd"
    assert result.stderr == ""


def test_backup_list_restore_round_trip(awkward_db: Path, repo: str, env: dict[str, str], tmp_path: Path) -> None:
    made = backup_id(repo, awkward_db, env)
    assert listed_ids(repo, env) == [made]
    target = tmp_path / "out" / "restored.db"
    result = cli("restore", "latest", "--repo", repo, "--to", sqlite_url(target), env=env)
    assert made in result.stdout
    assert table_checksums(target) == table_checksums(awkward_db)


def test_encrypted_round_trip_with_a_passphrase(
    awkward_db: Path, repo: str, env: dict[str, str], tmp_path: Path
) -> None:
    env["BACKSTREAM_PASSPHRASE"] = "a passphrase for the test"
    made = backup_id(repo, awkward_db, env, "--encrypt", "passphrase", *FAST_KDF)
    shown = json.loads(cli("show", made, "--repo", repo, "--json", env=env).stdout)
    assert shown["objects"][0]["cipher"] == "chacha20-poly1305"
    assert shown["objects"][0]["key_refs"] == ["passphrase"]
    target = tmp_path / "decrypted.db"
    cli("restore", made, "--repo", repo, "--to", sqlite_url(target), env=env)
    assert table_checksums(target) == table_checksums(awkward_db)


def test_repo_can_come_from_the_environment(awkward_db: Path, repo: str, env: dict[str, str]) -> None:
    env["BACKSTREAM_REPO"] = repo
    made = cli("backup", sqlite_url(awkward_db), env=env).stdout.strip()
    assert made in cli("list", env=env).stdout


def test_list_show_and_stats_describe_the_backups(awkward_db: Path, repo: str, env: dict[str, str]) -> None:
    made = backup_id(repo, awkward_db, env)
    table = cli("list", "--repo", repo, env=env).stdout
    assert made in table and "sqlite://" in table
    shown = cli("show", made[:20], "--repo", repo, env=env).stdout
    assert "sha256" in shown and made in shown
    manifest = json.loads(cli("show", "latest", "--repo", repo, "--json", env=env).stdout)
    on_disk = json.loads((Path(repo) / "backups" / made / "manifest.json").read_text())
    assert manifest == on_disk
    stats = json.loads(cli("stats", "--repo", repo, "--json", env=env).stdout)
    assert stats["backups"] == 1
    assert stats["success_rate"] == 1.0
    assert stats["newest"]["backup_id"] == made
    assert "success rate 100%" in cli("stats", "--repo", repo, env=env).stdout


def test_delete_removes_a_backup(awkward_db: Path, repo: str, env: dict[str, str]) -> None:
    first = backup_id(repo, awkward_db, env)
    second = backup_id(repo, awkward_db, env)
    deleted = json.loads(cli("delete", first, "--repo", repo, "--json", env=env).stdout)
    assert deleted == {"deleted": [first]}
    assert listed_ids(repo, env) == [second]
    assert not (Path(repo) / "backups" / first / "manifest.json").exists()


def test_backup_ids_sort_by_time(awkward_db: Path, repo: str, env: dict[str, str]) -> None:
    made = [backup_id(repo, awkward_db, env, "--compress", "zstd:1")]
    time.sleep(1.05)  # ids carry the start second
    made.append(backup_id(repo, awkward_db, env, "--compress", "zstd:1"))
    assert sorted(made) == made == listed_ids(repo, env)


def test_restore_needs_force_to_replace_a_non_empty_target(
    awkward_db: Path, repo: str, env: dict[str, str], tmp_path: Path
) -> None:
    made = backup_id(repo, awkward_db, env)
    target = tmp_path / "busy.db"
    target.write_bytes(b"something precious")
    refused = cli("restore", made, "--repo", repo, "--to", sqlite_url(target), env=env, check=False)
    assert_one_line_error(refused, "--force")
    assert target.read_bytes() == b"something precious"
    cli("restore", made, "--repo", repo, "--to", sqlite_url(target), "--force", "--json", env=env)
    assert table_checksums(target) == table_checksums(awkward_db)


def test_restore_of_a_tampered_backup_exits_3_and_leaves_the_target_untouched(
    awkward_db: Path, repo: str, env: dict[str, str], tmp_path: Path
) -> None:
    made = backup_id(repo, awkward_db, env, "--compress", "none")
    stored = next((Path(repo) / "backups" / made / "data").iterdir())
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.write_bytes(bytes(data))
    target = make_awkward_db(tmp_path / "existing.db", blob_mib=1, seed=5)
    before = file_sha256(target)
    result = cli("restore", made, "--repo", repo, "--to", sqlite_url(target), "--force", env=env, check=False)
    assert_one_line_error(result, "sha256")
    assert result.returncode == 3
    assert file_sha256(target) == before


# --- user errors: one line, non-zero, no traceback ---------------------------------------------


def test_init_refuses_an_existing_repository(shared: tuple[dict[str, str], str, Path]) -> None:
    env, repo, _ = shared
    assert_one_line_error(cli("init", "--repo", repo, env=env, check=False), "already a backstream repository")


def test_backup_to_an_uninitialised_repository_hints_at_init(
    awkward_db: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    result = cli("backup", sqlite_url(awkward_db), "--repo", str(tmp_path / "nothing"), env=env, check=False)
    assert_one_line_error(result, "backstream init --repo")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["backup", "oracle://db/x"], "no source plugin handles oracle://"),
        (["backup", "just-a-file.db"], "not a database URL"),
        (["backup", "sqlite:///nonexistent/x.db"], "does not exist"),
        (["backup", "SQLITE", "--compress", "nosuch"], "unknown compressor 'nosuch'"),
        (["backup", "SQLITE", "--compress", "zstd:99"], "zstd level"),
        (["backup", "SQLITE", "--encrypt", "nosuchkms:x"], "nosuchkms"),
        (["backup", "SQLITE", "--encrypt", "passphrase"], "passphrase"),
        (["backup", "SQLITE", "--format", "custom"], "one format"),
        (["restore", "20200101T000000Z-abcdef", "--to", "sqlite:///tmp/x.db"], "no backup"),
        (["restore", "latest", "--to", "sqlite:///tmp/x.db"], "no successful backup"),
        (["show", "nosuchid"], "no backup"),
        (["delete", "latest"], "name the backup ids"),
        (["backup", "SQLITE", "--storage-option", "novalue"], "KEY=VALUE"),
    ],
)
def test_user_errors_are_one_line(args: list[str], fragment: str, shared: tuple[dict[str, str], str, Path]) -> None:
    env, repo, database = shared
    argv = [sqlite_url(database) if arg == "SQLITE" else arg for arg in args]
    result = cli(*argv, "--repo", repo, env=env, check=False)
    assert_one_line_error(result, fragment)
    assert list(Path(repo).rglob("manifest.json")) == []


def test_a_missing_repository_option_is_one_line(env: dict[str, str]) -> None:
    assert_one_line_error(cli("list", env=env, check=False), "BACKSTREAM_REPO")


def test_passwords_in_urls_are_never_printed_or_stored(shared: tuple[dict[str, str], str, Path]) -> None:
    env, repo, _ = shared
    result = cli("backup", "postgresql://bob:s3cretpw@127.0.0.1:1/db", "--repo", repo, env=env, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "s3cretpw" not in result.stdout + result.stderr
    for path in Path(repo).rglob("*"):
        if path.is_file():
            assert b"s3cretpw" not in path.read_bytes(), path


# --- interrupted backups -----------------------------------------------------------------------


def test_kill_9_during_a_backup_commits_nothing_and_the_next_backup_recovers_the_lock(
    tmp_path: Path, repo: str, env: dict[str, str]
) -> None:
    source = make_random_db(tmp_path / "big.db", mib=48)
    before = listed_ids(repo, env)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backstream.cli.main",
            "backup",
            sqlite_url(source),
            "--repo",
            repo,
            "--compress",
            "zstd:19",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            partial = [p for p in Path(repo).glob("backups/*/data/*") if p.stat().st_size > 2**20]
            if partial:
                break
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        else:
            raise AssertionError("the backup never got mid-way")
        assert list((Path(repo) / "locks").glob("*.json")), "the running backup holds a lock"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert listed_ids(repo, env) == before
    assert [p for p in Path(env["TMPDIR"]).rglob("*") if p.is_file()] == []  # the snapshot was unlinked early

    result = cli("backup", sqlite_url(source), "--repo", repo, "--compress", "zstd:1", env=env)
    assert "breaking stale lock" in result.stderr
    assert listed_ids(repo, env) == [result.stdout.strip()]
    assert list((Path(repo) / "locks").glob("*.json")) == []


def _backup_until_midway(tmp_path: Path, repo: str, env: dict[str, str], ignored: str = "") -> subprocess.Popen[bytes]:
    """A backup started with the signal ``ignored`` (e.g. "TERM") ignored by its parent, as
    ``trap '' TERM`` or ``nohup`` leave it: set by a shell that execs backstream (an ignored
    signal stays ignored across exec), not by ``preexec_fn``, which is unsafe in a test process
    that has other libraries' threads (grpc's poller aborted a forked child)."""
    source = make_random_db(tmp_path / "big.db", mib=48)
    argv = [sys.executable, "-m", "backstream.cli.main", "backup", sqlite_url(source), "--repo", repo]
    argv += ["--compress", "zstd:19"]
    if ignored:
        argv = ["bash", "-c", f"trap '' {ignored}; exec \"$@\"", "bash", *argv]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not [p for p in Path(repo).glob("backups/*/data/*") if p.stat().st_size > 2**20]:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    return process


def test_a_sigterm_that_the_caller_ignores_stays_ignored(tmp_path: Path, repo: str, env: dict[str, str]) -> None:
    process = _backup_until_midway(tmp_path, repo, env, ignored="TERM")
    try:
        process.send_signal(signal.SIGTERM)  # as under `trap '' TERM` (or nohup, for SIGHUP)
        process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0
    assert len(listed_ids(repo, env)) == 1


def test_sigterm_stops_a_backup_whose_sigint_is_ignored(tmp_path: Path, repo: str, env: dict[str, str]) -> None:
    before = listed_ids(repo, env)
    process = _backup_until_midway(tmp_path, repo, env, ignored="INT")
    try:
        process.send_signal(signal.SIGTERM)  # a background job of a script: `backstream backup ... &`
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err.decode()
    assert listed_ids(repo, env) == before
    assert list((Path(repo) / "locks").glob("*.json")) == []
    assert [p for p in Path(repo).glob("backups/*/data/*")] == []


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_during_a_backup_stops_it_cleanly_like_ctrl_c(
    tmp_path: Path, repo: str, env: dict[str, str], stop: signal.Signals
) -> None:
    before = listed_ids(repo, env)
    process = _backup_until_midway(tmp_path, repo, env)
    try:
        process.send_signal(stop)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + stop
    assert err.decode().strip().splitlines()[-1] == f"backstream: stopped by {stop.name}"
    assert "Traceback" not in err.decode()
    assert listed_ids(repo, env) == before
    assert list((Path(repo) / "locks").glob("*.json")) == []  # released, not left to go stale
    assert [p for p in Path(repo).glob("backups/*/data/*")] == []  # the partial object was removed
    assert sorted(p.name for p in (Path(repo) / "backups").iterdir()) == before  # and its folders
    assert "0 orphans" in cli("cleanup", "--repo", repo, "--dry-run", env=env).stdout


# --- job files and the demo --------------------------------------------------------------------


def test_run_executes_a_backup_job_and_a_restore_job(
    awkward_db: Path, repo: str, env: dict[str, str], tmp_path: Path
) -> None:
    backup_job = tmp_path / "backup.toml"
    backup_job.write_text(
        f'name = "nightly"\nsource = "{sqlite_url(awkward_db)}"\nrepository = "{repo}"\ncompress = "zstd:2"\n'
    )
    made = json.loads(cli("run", str(backup_job), "--json", env=env).stdout)["backup_id"]
    target = tmp_path / "from-job.db"
    restore_job = tmp_path / "restore.toml"
    restore_job.write_text(
        f'action = "restore"\nbackup = "latest"\ntarget = "{sqlite_url(target)}"\nrepository = "{repo}"\n'
    )
    assert made in cli("run", str(restore_job), env=env).stdout
    assert table_checksums(target) == table_checksums(awkward_db)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("source = [unclosed", "not valid TOML"),
        ('source = "sqlite:///x.db"\nrepository = "/r"\ncolour = "blue"', "unknown key(s)"),
        ('repository = "/r"', "needs source"),
        ('action = "vacuum"', "action must be"),
    ],
)
def test_bad_job_files_are_one_line_errors(content: str, fragment: str, tmp_path: Path, env: dict[str, str]) -> None:
    job = tmp_path / "job.toml"
    job.write_text(content)
    assert_one_line_error(cli("run", str(job), env=env, check=False), fragment)


def test_demo_runs_the_main_job_and_is_idempotent(tmp_path: Path, env: dict[str, str]) -> None:
    first = cli("demo", env=env, cwd=tmp_path)
    assert "tables identical" in first.stdout
    assert "(created)" in first.stdout
    second = cli("demo", env=env, cwd=tmp_path)
    assert "tables identical" in second.stdout
    assert "(existing)" in second.stdout
    assert len(listed_ids(str(tmp_path / "backstream-demo" / "repository"), env)) == 2


# --- S3 ----------------------------------------------------------------------------------------


def test_round_trip_through_s3_from_the_command_line(awkward_db: Path, s3_bucket: S3Bucket, tmp_path: Path) -> None:
    env = dict(os.environ, BACKSTREAM_AUDIT_LOG=str(tmp_path / "audit.log"))
    option = ["--storage-option", f"endpoint_url={s3_bucket.server.endpoint_url}"]
    cli("init", "--repo", s3_bucket.url, *option, env=env)
    made = cli("backup", sqlite_url(awkward_db), "--repo", s3_bucket.url, *option, env=env).stdout.strip()
    target = tmp_path / "from-s3.db"
    cli("restore", made, "--repo", s3_bucket.url, *option, "--to", sqlite_url(target), env=env)
    assert table_checksums(target) == table_checksums(awkward_db)
