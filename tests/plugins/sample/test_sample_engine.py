"""The sample third-party engine plugin (tests/sample_plugin/) through the real command line: its
source, its journal archive as ``check``, ``stats`` and ``prune`` see it, its ``samplekv-archive``
command and its ``backup --kv-strip-comments`` option, all reached through its entry point only.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from backstream import IntegrityError, Plugins
from backstream.repository import Repository

BACKSTREAM = str(Path(sys.executable).parent / "backstream")  # the venv the tests run in
ROOT = Path(__file__).resolve().parents[3]
STORE = b"# the store\na=1\nb=2\na=3\n"


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [BACKSTREAM, *argv], capture_output=True, text=True, timeout=60, env=env or dict(os.environ)
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def ok(*argv: str) -> str:
    result = cli(*argv)
    assert result.returncode == 0, f"backstream {' '.join(argv)} failed: {result.stderr}"
    return result.stdout


def as_json(*argv: str) -> Any:
    return json.loads(ok(*argv, "--json"))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A samplekv store writing its second journal file (the first is closed)."""
    directory = tmp_path / "kv"
    (directory / "journal").mkdir(parents=True)
    (directory / "data.kv").write_bytes(STORE)
    (directory / "journal" / "000001.log").write_text("set a 4\n")
    (directory / "journal" / "000002.log").write_text("set b 5\n")
    return directory


@pytest.fixture
def repo(tmp_path: Path) -> str:
    path = str(tmp_path / "repo")
    ok("init", "--repo", path)
    return path


def url(directory: Path) -> str:
    return f"samplekv://{directory}"


def backup(store: Path, repo: str, *options: str) -> dict[str, Any]:
    """The manifest of a new backup of ``store``."""
    summary = as_json("backup", url(store), "--repo", repo, *options)
    manifest: dict[str, Any] = as_json("show", summary["backup_id"], "--repo", repo)
    return manifest


def push(store: Path, repo: str, number: int) -> subprocess.CompletedProcess[str]:
    return cli("samplekv-archive", str(store / "journal" / f"{number:06d}.log"), "--repo", repo)


def new_journal(store: Path, number: int) -> None:
    (store / "journal" / f"{number:06d}.log").write_text(f"change {number}\n")


def check(repo: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = cli("check", "--repo", repo, "--json", *args)
    return result.returncode, json.loads(result.stdout)


def journal_stats(repo: str) -> dict[str, Any]:
    (archive,) = [a for a in as_json("stats", "--repo", repo)["archives"] if a["name"] == "journal"]
    return dict(archive)


# --- discovery ------------------------------------------------------------------------------------


def test_the_sample_is_installed_as_a_backstream_entry_point_of_its_own_distribution() -> None:
    (point,) = [p for p in importlib.metadata.entry_points(group="backstream") if p.name == "sample"]
    assert point.value == "backstream_sample_plugin"
    assert point.dist is not None and point.dist.name == "backstream-sample-plugin"


def test_neither_the_core_nor_the_built_in_plugins_name_the_sample() -> None:
    for top in ("core", "plugins"):
        for path in (ROOT / top).rglob("*.py"):
            text = path.read_text()
            assert "samplekv" not in text and "backstream_sample_plugin" not in text, path


def test_help_lists_the_command_and_backup_help_the_option() -> None:
    assert "samplekv-archive" in ok("--help")
    assert "archive one closed samplekv journal file" in ok("samplekv-archive", "--help")
    assert "--kv-strip-comments" in ok("backup", "--help")


def test_plugins_lists_every_family_the_sample_registers_with_its_version() -> None:
    rows = as_json("plugins")
    mine = {(r["family"], r["name"]) for r in rows if r["provided_by"] == "backstream-sample-plugin"}
    assert mine == {
        ("source", "samplekv"),
        ("compressor", "sample-reverse"),
        ("archive", "samplekv-journal"),
        ("command", "samplekv-archive"),
        ("command", "backup:samplekv"),
    }
    assert {r["version"] for r in rows if r["provided_by"] == "backstream-sample-plugin"} == {"1.2.3"}


def test_without_entry_points_the_command_does_not_exist(repo: str) -> None:
    env = dict(os.environ, BACKSTREAM_DISABLE_PLUGIN_AUTOLOAD="1")
    result = cli("samplekv-archive", "000001.log", "--repo", repo, env=env)
    assert result.returncode == 2 and "invalid choice: 'samplekv-archive'" in result.stderr


# --- the source -----------------------------------------------------------------------------------


def test_a_backup_restores_byte_for_byte_and_records_the_journal_file_it_starts_at(
    store: Path, repo: str, tmp_path: Path
) -> None:
    manifest = backup(store, repo)
    assert manifest["source"]["kind"] == "samplekv" and manifest["source"]["metadata"]["journal"] == 2
    assert [o["name"] for o in manifest["objects"]] == ["data.kv"]
    ok("restore", manifest["backup_id"], "--repo", repo, "--to", url(tmp_path / "restored"))
    assert (tmp_path / "restored" / "data.kv").read_bytes() == STORE


def test_a_restore_leaves_a_store_with_data_alone_unless_forced(store: Path, repo: str) -> None:
    backup(store, repo)
    (store / "data.kv").write_bytes(b"a=9\n")
    refused = cli("restore", "latest", "--repo", repo, "--to", url(store))
    assert refused.returncode != 0 and refused.stderr.count("\n") == 1 and "use --force" in refused.stderr
    assert (store / "data.kv").read_bytes() == b"a=9\n"
    ok("restore", "latest", "--repo", repo, "--to", url(store), "--force")
    assert (store / "data.kv").read_bytes() == STORE


def test_the_option_it_adds_to_backup_leaves_the_comment_lines_out(store: Path, repo: str, tmp_path: Path) -> None:
    backup(store, repo, "--kv-strip-comments")
    ok("restore", "latest", "--repo", repo, "--to", url(tmp_path / "restored"))
    assert (tmp_path / "restored" / "data.kv").read_bytes() == b"a=1\nb=2\na=3\n"


def test_the_option_is_refused_in_one_line_for_another_engines_source(tmp_path: Path, repo: str) -> None:
    result = cli("backup", f"sqlite://{tmp_path}/app.db", "--repo", repo, "--kv-strip-comments")
    assert result.returncode == 2
    assert result.stderr == "backstream: error: --kv-strip-comments applies to samplekv:// sources only\n"


# --- the command and the archive ------------------------------------------------------------------


def test_archived_journal_files_are_checked_and_counted_by_stats(store: Path, repo: str) -> None:
    manifest = backup(store, repo)
    new_journal(store, 3)
    assert push(store, repo, 2).stdout.startswith("archived 000002.log")
    assert push(store, repo, 3).returncode == 0
    code, report = check(repo, "--read-data")
    assert (code, report["ok"], report["archived"]) == (0, True, 2)
    archive = journal_stats(repo)
    assert (archive["files"], archive["plaintext_size"], archive["unreadable"]) == (2, 17, 0)
    assert archive["window"]["detail"] == f"backup {manifest['backup_id']}, journal to 000003.log"


def test_pushing_a_file_again_stores_it_once_and_other_content_under_its_name_is_refused(
    store: Path, repo: str
) -> None:
    push(store, repo, 1)
    again = push(store, repo, 1)
    assert (again.returncode, again.stdout) == (0, "000001.log is already archived\n")
    (store / "journal" / "000001.log").write_text("something else\n")
    refused = push(store, repo, 1)
    assert refused.returncode == 1
    assert refused.stderr == (
        "backstream: error: 000001.log is already archived with other content; refusing to overwrite it\n"
    )
    assert journal_stats(repo)["files"] == 1


def test_a_file_not_named_like_a_journal_file_is_refused_in_one_line(tmp_path: Path, repo: str) -> None:
    (tmp_path / "notes.txt").write_text("x")
    result = cli("samplekv-archive", str(tmp_path / "notes.txt"), "--repo", repo)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "not a journal file" in result.stderr


def test_a_bad_record_makes_check_fail_with_one_line_naming_it(store: Path, repo: str) -> None:
    push(store, repo, 1)
    push(store, repo, 2)
    Path(repo, "samplekv", "000002.log.json").write_text('{"format": "samplekv-journal/1"}')
    result = cli("check", "--repo", repo)
    assert result.returncode == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("PROBLEM")]
    assert problems == [
        "PROBLEM record: samplekv/000002.log.json: "
        "samplekv/000002.log.json is not a samplekv journal record: no 'number'"
    ]
    assert journal_stats(repo)["unreadable"] == 1


def test_a_changed_byte_in_an_archived_object_is_a_sha256_problem(store: Path, repo: str) -> None:
    push(store, repo, 1)
    stored = Path(repo, "samplekv", "000001.log.zst")
    raw = bytearray(stored.read_bytes())
    raw[-1] ^= 1
    stored.write_bytes(bytes(raw))
    code, report = check(repo)
    assert code == 1
    assert [(p["kind"], p["path"]) for p in report["problems"]] == [("sha256", "samplekv/000001.log.zst")]


def test_a_journal_file_missing_between_archived_ones_is_a_hole_naming_the_backup(store: Path, repo: str) -> None:
    manifest = backup(store, repo)  # starts at journal file 2
    new_journal(store, 3)
    new_journal(store, 4)
    push(store, repo, 2)
    push(store, repo, 4)
    code, report = check(repo)
    assert code == 1
    (problem,) = report["problems"]
    assert (problem["kind"], problem["path"]) == ("journal", "samplekv/000003.log.json")
    assert manifest["backup_id"] in problem["detail"]
    assert journal_stats(repo)["window"] is None


def test_prune_deletes_the_journal_files_no_kept_backup_needs(store: Path, repo: str) -> None:
    backup(store, repo)  # starts at 2
    push(store, repo, 1)
    push(store, repo, 2)
    new_journal(store, 3)
    push(store, repo, 3)
    newest = backup(store, repo)  # starts at 3
    dry = as_json("prune", "--repo", repo, "--keep-last", "1", "--dry-run")
    assert [(a["kind"], a["name"], a["keep"]) for a in dry["archive"]] == [
        ("samplekv", "000001.log", False),
        ("samplekv", "000002.log", False),
        ("samplekv", "000003.log", True),
    ]
    assert journal_stats(repo)["files"] == 3
    printed = ok("prune", "--repo", repo, "--keep-last", "1")
    assert "archived samplekv files: 1 kept, 2 deleted" in printed  # the archive's own label
    assert sorted(p.name for p in Path(repo, "samplekv").iterdir()) == ["000003.log.json", "000003.log.zst"]
    assert check(repo)[0] == 0
    assert journal_stats(repo)["window"]["detail"] == f"backup {newest['backup_id']}, journal to 000003.log"


# --- fetch (the Python API: no command of its own) ------------------------------------------------


async def fetch(repo: str, name: str, path: Path) -> None:
    plugins = Plugins.load()
    repository = await Repository.open(plugins.open_storage(repo))
    archive = plugins.archives().get("samplekv-journal")
    await archive.fetch(repository, name, str(path), plugins=plugins)


def test_fetch_writes_an_archived_file_back_and_nothing_when_it_was_changed(
    store: Path, repo: str, tmp_path: Path
) -> None:
    push(store, repo, 1)
    anyio.run(fetch, repo, "000001.log", tmp_path / "back.log")
    assert (tmp_path / "back.log").read_bytes() == (store / "journal" / "000001.log").read_bytes()
    stored = Path(repo, "samplekv", "000001.log.zst")
    stored.write_bytes(stored.read_bytes()[:-1])
    with pytest.raises(IntegrityError, match=r"000001\.log\.zst is truncated"):
        anyio.run(fetch, repo, "000001.log", tmp_path / "broken.log")
    assert not (tmp_path / "broken.log").exists()
