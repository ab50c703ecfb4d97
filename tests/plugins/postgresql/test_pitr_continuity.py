"""verify-pitr checks that the WAL archive holds every segment the base backups need up to now: a
lost segment makes it name the segment and the backups cut off by it, and exit 1.

The first tests are pure (segment ranges); the rest run one archiving PostgreSQL 15 of their own.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from backstream.jobs import open_repository
from backstream.plugins import Plugins
from backstream.repository import Manifest, SourceInfo, new_backup_id, utc_now
from backstream_plugins.postgresql.continuity import (
    NotInHistory,
    first_missing,
    first_missing_across,
    needed_from,
    parse_history,
)
from backstream_plugins.postgresql.setup import PitrWindow
from fixtures.pitr import cli, enable_archiving, ok, postgres_owned_dir
from fixtures.postgres import PostgresServer, start_postgres

MiB = 1024 * 1024


def names(*numbers: int, timeline: int = 1) -> set[str]:
    return {f"{timeline:08X}{n // 256:08X}{n % 256:08X}" for n in numbers}


def test_a_complete_range_has_no_missing_segment() -> None:
    assert first_missing(names(3, 4, 5), "000000010000000000000003", "000000010000000000000005") is None


def test_the_first_missing_segment_is_named() -> None:
    missing = first_missing(names(3, 5, 7), "000000010000000000000003", "000000010000000000000007")
    assert missing == "000000010000000000000004"


def test_ranges_cross_from_one_log_file_to_the_next() -> None:
    """16 MiB segments: 256 per log id, so ...00FF is followed by ...0100000000."""
    have = names(0xFE, 0xFF, 0x101)
    assert first_missing(have, "0000000100000000000000FE", "000000010000000100000001") == "000000010000000100000000"


def test_other_segment_sizes_number_segments_their_own_way() -> None:
    """64 MiB segments: 64 per log id, so ...003F is followed by ...0100000000."""
    have = {"00000001000000000000003F", "000000010000000100000000"}
    assert first_missing(have, "00000001000000000000003F", "000000010000000100000000", 64 * MiB) is None


def test_a_range_over_two_timelines_is_refused() -> None:
    with pytest.raises(ValueError):
        first_missing(set(), "000000010000000000000003", "000000020000000000000005")


def test_a_history_file_lists_each_ancestor_and_where_it_ended() -> None:
    text = "1\t0/3000028\tno recovery target specified\n\n2\t0/5A00000\tat restore point\n"
    assert parse_history(text) == [(1, 0x3000028), (2, 0x5A00000)]


# Timeline 1 ended at 0/3000028 (in segment 3): timeline 2 holds segment 3 on from there.
HISTORY = [(1, 0x3000028)]


def test_wal_across_a_timeline_switch_is_the_old_timeline_then_the_history_then_the_new() -> None:
    have = names(1, 2) | names(3, 4, timeline=2) | {"00000002.history"}
    assert first_missing_across(have, "000000010000000000000001", "000000020000000000000004", HISTORY) is None


def test_the_old_timelines_segment_holding_the_switch_is_not_needed() -> None:
    """Timeline 1's segment 3 is read from timeline 2's file of the same number."""
    have = names(1, 2) | names(3, 4, timeline=2) | {"00000002.history"}
    assert "000000010000000000000003" not in have
    assert first_missing_across(have, "000000010000000000000001", "000000020000000000000004", HISTORY) is None


def test_a_missing_history_file_or_segment_on_either_side_is_named() -> None:
    full = names(1, 2) | names(3, 4, timeline=2) | {"00000002.history"}
    first, last = "000000010000000000000001", "000000020000000000000004"
    assert first_missing_across(full - {"00000002.history"}, first, last, HISTORY) == "00000002.history"
    assert first_missing_across(full - names(2), first, last, HISTORY) == "000000010000000000000002"
    assert first_missing_across(full - names(3, timeline=2), first, last, HISTORY) == "000000020000000000000003"


def test_a_backup_on_a_timeline_that_is_no_ancestor_is_refused() -> None:
    with pytest.raises(NotInHistory):
        first_missing_across(set(), "000000030000000000000001", "000000020000000000000004", HISTORY)


def _manifest(**metadata: object) -> Manifest:
    return Manifest(
        backup_id="20261126T000000Z-000000",
        repository_id="r",
        source=SourceInfo(kind="postgresql-physical", url="postgresql://x", metadata=dict(metadata)),
        started_at=utc_now(),
        finished_at=utc_now(),
        objects=(),
    )


def test_a_backup_needs_the_archive_from_its_start_or_with_fetched_wal_from_after_its_stop() -> None:
    start, stop = "000000010000000000000003", "000000010000000000000005"
    assert needed_from(_manifest(start_wal=start, stop_wal=stop, wal_method="none")) == start
    fetched = {"start_wal": start, "stop_wal": stop, "wal_method": "fetch"}
    # From a primary, pg_backup_stop switched segments: the stop segment is whole inside the tar.
    assert needed_from(_manifest(**fetched, backup_from="primary")) == "000000010000000000000006"
    # From a standby (or not recorded) the tar's stop segment may be partial: it is needed too.
    assert needed_from(_manifest(**fetched, backup_from="standby")) == stop
    assert needed_from(_manifest(**fetched)) == stop
    assert needed_from(_manifest()) is None


def window(**fields: object) -> PitrWindow:
    base: dict[str, object] = {
        "segment": "000000020000000000000009",
        "waited_seconds": 0.1,
        "recoverable_from_backup": None,
        "recoverable_from": None,
        "newest_wal": "000000020000000000000009",
    }
    return PitrWindow(**{**base, **fields})  # type: ignore[arg-type]


def test_a_window_with_a_recoverable_backup_and_no_hole_has_no_problem() -> None:
    assert window(recoverable_from_backup="b2", recoverable_from="2026-11-26T00:00:00Z").problem() is None


def test_backups_that_could_not_be_checked_are_not_counted_as_recoverable() -> None:
    problem = window(unchecked_backups=("b1",)).problem()
    assert problem is not None and "no base backup could be checked on the current timeline (00000002)" in problem
    described = window(unchecked_backups=("b1",)).describe()
    assert "not checked (" in described and "backup(s) b1" in described


def test_a_hole_is_the_problem_even_when_a_newer_backup_recovers() -> None:
    holey = window(recoverable_from_backup="b2", recoverable_from="t", missing_wal="X", broken_backups=("b1",))
    assert holey.problem() == "WAL segment X is missing from the archive"


# --- end to end ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Archiving:
    server: PostgresServer
    repo: str


@pytest.fixture(scope="module")
def archiving(server_side_backstream: str) -> Iterator[Archiving]:
    base = postgres_owned_dir("backstream-continuity-")
    try:
        with start_postgres() as server:
            repo = str(base / "repo")
            enable_archiving(server, repo)
            yield Archiving(server, repo)
    finally:  # once the server is down: its archiver would otherwise make the repository again
        shutil.rmtree(base, ignore_errors=True)


def verify(archiving: Archiving) -> tuple[int, dict[str, object], str]:
    result = cli("verify-pitr", archiving.server.url(), "--repo", archiving.repo, "--json")
    return result.returncode, json.loads(result.stdout) if result.stdout else {}, result.stderr


def switch_segments(archiving: Archiving, count: int) -> list[str]:
    with archiving.server.connect() as conn:
        return [conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0] for _ in range(count)]


def test_verify_pitr_without_a_base_backup_exits_1_saying_so(archiving: Archiving) -> None:
    code, window, stderr = verify(archiving)
    assert code == 1
    assert window["recoverable_from_backup"] is None and window["complete"] is False
    assert "no physical base backup to recover from" in stderr and "Traceback" not in stderr


def test_a_lost_segment_cuts_off_the_backups_before_it_until_a_newer_backup_exists(archiving: Archiving) -> None:
    first = ok("backup", archiving.server.url(), "--physical", "--repo", archiving.repo).strip()
    with archiving.server.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (n int)")
        conn.execute("INSERT INTO t VALUES (1)")
    switched = switch_segments(archiving, 3)
    code, window, _ = verify(archiving)
    assert (code, window["recoverable_from_backup"], window["missing_wal"]) == (0, first, None)

    lost = switched[1]
    for path in Path(archiving.repo, "wal", lost[:8]).glob(lost + ".*"):
        path.unlink()  # as if someone or something deleted it from the repository
    code, window, stderr = verify(archiving)
    assert code == 1
    assert window["missing_wal"] == lost and window["broken_backups"] == [first]
    assert window["recoverable_from_backup"] is None
    assert f"WAL segment {lost} is missing from the archive" in stderr

    second = ok("backup", archiving.server.url(), "--physical", "--repo", archiving.repo).strip()
    code, window, stderr = verify(archiving)
    assert code == 1  # the older backup is still cut off by the hole
    assert window["recoverable_from_backup"] == second
    assert window["missing_wal"] == lost and window["broken_backups"] == [first]

    ok("delete", first, "--repo", archiving.repo)
    code, window, _ = verify(archiving)
    assert (code, window["recoverable_from_backup"], window["missing_wal"]) == (0, second, None)

    # Another cluster's base backup in the same repository, whose WAL names would fall before the
    # hole: it says nothing about this cluster and is left out.
    foreign = anyio.run(commit_foreign_backup, archiving.repo, switched[0])
    code, window, _ = verify(archiving)
    assert (code, window["recoverable_from_backup"], window["missing_wal"]) == (0, second, None)
    assert foreign not in window["broken_backups"] + window["unchecked_backups"]
    ok("delete", foreign, "--repo", archiving.repo)


async def commit_foreign_backup(repo: str, start_wal: str) -> str:
    repository = await open_repository(Plugins.load(), repo)
    metadata = {"system_identifier": "1", "start_wal": start_wal, "stop_wal": start_wal, "wal_method": "none"}
    taken = datetime(2026, 1, 1, tzinfo=UTC)  # older than this cluster's backups: it would be checked first
    manifest = Manifest(
        backup_id=new_backup_id(taken),
        repository_id=repository.repository_id,
        source=SourceInfo(kind="postgresql-physical", url="postgresql://other", metadata=metadata),
        started_at=taken,
        finished_at=taken,
    )
    await repository.commit(manifest)
    return manifest.backup_id


def test_the_text_report_names_the_hole_and_what_is_still_recoverable(archiving: Archiving) -> None:
    newest = json.loads(ok("list", "--repo", archiving.repo, "--json"))
    assert newest, "runs after the end-to-end test above"
    switched = switch_segments(archiving, 2)
    lost = switched[0]
    for path in Path(archiving.repo, "wal", lost[:8]).glob(lost + ".*"):
        path.unlink()
    result = cli("verify-pitr", archiving.server.url(), "--repo", archiving.repo)
    assert result.returncode == 1
    assert f"WAL segment {lost} is missing from the archive: backup(s) " in result.stdout
    assert "take a new base backup" in result.stdout


def test_a_segment_whose_record_is_there_but_not_its_object_counts_as_missing(archiving: Archiving) -> None:
    newest = ok("backup", archiving.server.url(), "--physical", "--repo", archiving.repo).strip()
    lost = switch_segments(archiving, 2)[0]
    Path(archiving.repo, "wal", lost[:8], lost + ".zst").unlink()  # the record stays: only the bytes are gone
    code, window, _ = verify(archiving)
    assert code == 1 and window["recoverable_from_backup"] is None, window
    assert newest in window["broken_backups"]  # even the newest backup cannot be replayed past it


def test_verify_pitr_against_a_repository_the_server_does_not_archive_into_says_so(
    archiving: Archiving, tmp_path: Path
) -> None:
    elsewhere = str(tmp_path / "elsewhere")
    ok("init", "--repo", elsewhere)
    result = cli("verify-pitr", archiving.server.url(), "--repo", elsewhere, "--timeout", "3")
    assert result.returncode != 0
    assert f"but not into {elsewhere}: check that archive_command names this repository" in result.stderr
