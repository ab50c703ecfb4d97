"""Progress people expect: percent and ETA when the total is known (restore, check), an estimate
marked ``~`` (a backup of a source that can guess its size), bytes and rate otherwise; ``--quiet``
turns progress and summaries off; ``--progress``/``--no-progress`` force the line on or off.
"""

from __future__ import annotations

import argparse
import io
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest
from backstream import SizedSource
from backstream.cli.main import main
from backstream.cli.progress_display import ProgressDisplay, progress_wanted
from backstream.jobs.common import source_factory
from backstream.plugins import Plugins
from fixtures.postgres import PostgresServer
from fixtures.sqlite_db import make_random_db

CHUNK = 64 * 1024


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def feed(display: ProgressDisplay, clock: Clock, chunks: int, *, step: float = 0.25) -> None:
    """``chunks`` chunks, each ``step`` seconds after the last (by default: each one redraws)."""
    for _ in range(chunks):
        clock.now += step
        display(CHUNK)


def last_line(stream: io.StringIO) -> str:
    return stream.getvalue().replace("\n", "\r").strip("\r").rsplit("\r", 1)[-1]


def test_a_known_total_shows_percent_bytes_of_the_total_and_an_eta() -> None:
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay("restore", stream=stream, clock=clock)
    display.expect(100 * CHUNK)
    feed(display, clock, 40)
    line = last_line(stream)
    assert line.startswith("restore:  40%"), line
    assert "2.5 MiB of 6.2 MiB" in line and "ETA " in line
    feed(display, clock, 60)
    display.close()
    assert last_line(stream).startswith("restore: 100%")
    assert stream.getvalue().endswith("\n")


def test_without_a_total_the_line_shows_bytes_rate_and_elapsed_but_no_percent() -> None:
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay("backup", stream=stream, clock=clock)
    feed(display, clock, 16)
    display.close()
    line = last_line(stream)
    assert line.startswith("backup: 1.0 MiB  ") and "/s" in line
    assert "%" not in stream.getvalue() and "ETA" not in stream.getvalue()


def test_an_estimate_is_marked_and_dropped_once_the_count_passes_it() -> None:
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay("backup", stream=stream, clock=clock)
    display.expect(50 * CHUNK, estimate=True)
    feed(display, clock, 25)
    assert last_line(stream).startswith("backup: ~ 50%") and "of ~3.1 MiB" in last_line(stream)
    feed(display, clock, 50)  # the dump came out larger than the database's estimate
    assert "%" not in last_line(stream) and last_line(stream).startswith("backup: 4.7 MiB")
    display.close()
    assert last_line(stream).startswith("backup: 100%")  # done: the size is known now


def test_redraws_are_throttled_to_ten_a_second() -> None:
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay("restore", stream=stream, clock=clock)
    display.expect(10_000 * CHUNK)
    feed(display, clock, 10_000, step=0.0001)  # one second's worth of chunks
    assert 5 <= stream.getvalue().count("\r") <= 25
    assert display.done == 10_000 * CHUNK


def test_disabled_draws_nothing_but_still_counts() -> None:
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay("restore", enabled=False, stream=stream, clock=clock)
    display.expect(10 * CHUNK)
    feed(display, clock, 10)
    display.close()
    assert stream.getvalue() == "" and display.done == 10 * CHUNK


def test_several_threads_may_report_at_once_and_no_byte_is_lost() -> None:
    stream = io.StringIO()
    display = ProgressDisplay("restore", stream=stream)
    display.expect(8 * 2000 * CHUNK)
    threads = [threading.Thread(target=lambda: [display(CHUNK) for _ in range(2000)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    display.close()
    assert display.done == 8 * 2000 * CHUNK
    assert last_line(stream).startswith("restore: 100%")


def test_without_tqdm_the_line_is_replaced_by_one_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay("restore", stream=stream, clock=clock)
    feed(display, clock, 20)
    display.close()
    assert stream.getvalue() == (
        "backstream: no progress line: the Python module 'tqdm' is not installed; "
        "install it with: pip install 'backstream[progress]'\n"
    )


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("options", "tty", "wanted"),
    [
        ({}, True, True),
        ({}, False, False),
        ({"json": True}, True, False),
        ({"progress": True}, False, True),
        ({"progress": True, "json": True}, False, True),
        ({"progress": False}, True, False),
        ({"quiet": True}, True, False),
        ({"quiet": True, "progress": True}, True, False),
    ],
)
def test_when_the_line_is_drawn(options: dict[str, bool], tty: bool, wanted: bool) -> None:
    args = argparse.Namespace(**{"quiet": False, "progress": None, "json": False, **options})
    assert progress_wanted(args, Terminal() if tty else io.StringIO()) is wanted


# --- the commands -------------------------------------------------------------------------------


@pytest.fixture
def repo_and_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    monkeypatch.delenv("BACKSTREAM_REPO", raising=False)
    monkeypatch.setenv("BACKSTREAM_AUDIT_LOG", str(tmp_path / "audit.log"))
    repo = str(tmp_path / "repo")
    assert main(["init", "--repo", repo]) == 0
    return repo, make_random_db(tmp_path / "source.db", mib=2)


def test_backup_restore_and_check_draw_their_lines_with_progress(
    repo_and_db: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, database = repo_and_db
    capsys.readouterr()
    assert main(["backup", f"sqlite://{database}", "--repo", repo, "--compress", "none", "--progress"]) == 0
    out, err = capsys.readouterr()
    backup_id = out.strip()
    assert "backup: ~" in err, err  # the file's size is an estimate of the dump's
    assert err.rstrip("\n").rsplit("\r", 1)[-1].startswith("backup: 100%"), err

    target = tmp_path / "restored.db"
    assert main(["restore", backup_id, "--repo", repo, "--to", f"sqlite://{target}", "--progress"]) == 0
    err = capsys.readouterr().err
    assert "restore: 100%" in err and "ETA" in err and "~" not in err, err

    assert main(["check", "--repo", repo, "--read-data", "--progress"]) == 0
    err = capsys.readouterr().err
    assert "check: 100%" in err and "ETA" in err, err


def test_on_a_terminal_that_reports_no_size_the_line_is_still_drawn(repo_and_db: tuple[str, Path]) -> None:
    """A fresh pty (script(1), some CI runners, ssh without a size) says 0x0: tqdm hid the bar."""
    repo, database = repo_and_db
    master, slave = pty.openpty()
    try:
        process = subprocess.run(
            [sys.executable, "-m", "backstream.cli.main", "backup", f"sqlite://{database}", "--repo", repo],
            stderr=slave, stdout=subprocess.DEVNULL, timeout=120, check=True,
        )  # fmt: skip
        os.close(slave)
        drawn = b""
        while chunk := _read(master):
            drawn += chunk
    finally:
        os.close(master)
    assert process.returncode == 0
    assert b"backup: 100%" in drawn, drawn


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: the other end is closed
        return b""


def test_quiet_prints_nothing_on_success_and_no_progress_draws_nothing(
    repo_and_db: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, database = repo_and_db
    capsys.readouterr()
    assert main(["backup", f"sqlite://{database}", "--repo", repo, "--quiet"]) == 0
    assert capsys.readouterr() == ("", "")
    target = tmp_path / "restored.db"
    assert main(["restore", "latest", "--repo", repo, "--to", f"sqlite://{target}", "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["check", "--repo", repo, "-q", "--read-data"]) == 0
    assert capsys.readouterr() == ("", "")
    assert main(["backup", f"sqlite://{database}", "--repo", repo, "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() and err == ""


def test_quiet_check_still_prints_each_problem(
    repo_and_db: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    repo, database = repo_and_db
    assert main(["backup", f"sqlite://{database}", "--repo", repo, "-q"]) == 0
    (stored,) = (path for path in Path(repo, "backups").rglob("*") if path.is_file() and "data" in path.parts)
    stored.write_bytes(stored.read_bytes()[:-1])
    capsys.readouterr()
    assert main(["check", "--repo", repo, "-q"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("PROBLEM size:") and out.count("\n") == 1, out


# --- sources that can guess their size ----------------------------------------------------------


def open_source(url: str) -> object:
    _, factory = source_factory(Plugins.load(autoload=False), url)
    return factory.open(url, {})


def test_the_sqlite_source_estimates_its_dump_by_the_database_file(tmp_path: Path) -> None:
    database = make_random_db(tmp_path / "source.db", mib=1)
    source = open_source(f"sqlite://{database}")
    assert isinstance(source, SizedSource)
    assert anyio.run(source.estimated_size) == database.stat().st_size
    missing = tmp_path / "missing.db"
    gone = open_source(f"sqlite://{missing}")
    assert isinstance(gone, SizedSource) and anyio.run(gone.estimated_size) is None


def test_the_postgresql_source_estimates_its_dump_by_pg_database_size(postgres_server: PostgresServer) -> None:
    url = postgres_server.url()
    source = open_source(url)
    assert isinstance(source, SizedSource)
    with postgres_server.connect() as conn:
        row = conn.execute("SELECT pg_database_size('postgres')").fetchone()
    assert row is not None
    assert anyio.run(source.estimated_size) == row[0]
