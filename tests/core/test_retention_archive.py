"""Retention of archived WAL/binlogs: ``archive_to_keep`` keeps what any kept backup's recovery needs.

Hypothesis checks the safety properties over arbitrary archives and backup starts.
"""

from __future__ import annotations

from backstream.retention import ArchivedFile, RecoveryStart, archive_to_keep
from hypothesis import given
from hypothesis import strategies as st


def binlog(sequence: int) -> ArchivedFile:
    return ArchivedFile(name=f"mariadb-bin.{sequence:06d}", position=(sequence,))


positions = st.tuples(st.integers(1, 3), st.integers(0, 40))
archives = st.lists(positions, unique=True, max_size=40).map(
    lambda ps: [ArchivedFile(name=f"{t:08X}{s:016X}", position=(t, s)) for t, s in ps]
)
starts = st.lists(positions, max_size=6).map(
    lambda ps: [RecoveryStart(backup_id=f"b{i}", position=p) for i, p in enumerate(ps)]
)


def test_files_before_the_oldest_kept_start_are_deleted_and_the_rest_kept() -> None:
    decisions = archive_to_keep(
        [RecoveryStart("new", (7,)), RecoveryStart("old", (4,))], [binlog(n) for n in range(1, 10)]
    )
    assert [d.file.position[0] for d in decisions if not d.keep] == [1, 2, 3]
    assert [d.file.position[0] for d in decisions if d.keep] == [4, 5, 6, 7, 8, 9]


def test_reasons_name_the_backup_whose_window_a_file_is_in() -> None:
    decisions = {d.file.position[0]: d for d in archive_to_keep([RecoveryStart("b1", (3,))], map(binlog, (2, 3)))}
    assert decisions[3].reasons == ("in the recovery window of b1",)
    assert decisions[2].reasons == ("before the start of the oldest kept backup b1",)


def test_without_any_kept_start_nothing_is_deleted() -> None:
    assert all(d.keep for d in archive_to_keep([], map(binlog, range(1, 5))))


@given(starts, archives)
def test_never_deletes_a_file_a_kept_backup_needs(kept: list[RecoveryStart], files: list[ArchivedFile]) -> None:
    for decision in archive_to_keep(kept, files):
        if any(decision.file.position >= start.position for start in kept):
            assert decision.keep


@given(starts, archives)
def test_deletes_only_files_wholly_before_the_oldest_kept_start(
    kept: list[RecoveryStart], files: list[ArchivedFile]
) -> None:
    for decision in archive_to_keep(kept, files):
        if not decision.keep:
            assert kept and decision.file.position < min(start.position for start in kept)


@given(starts, archives)
def test_every_file_gets_exactly_one_decision_in_archive_order(
    kept: list[RecoveryStart], files: list[ArchivedFile]
) -> None:
    decisions = archive_to_keep(kept, files)
    assert sorted(d.file.name for d in decisions) == sorted(f.name for f in files)
    assert [d.file.position for d in decisions] == sorted(f.position for f in files)
    assert all(d.reasons for d in decisions)


@given(starts.filter(bool), archives, positions)
def test_keeping_one_more_backup_never_deletes_more(
    kept: list[RecoveryStart], files: list[ArchivedFile], extra: tuple[int, int]
) -> None:
    before = {d.file.name for d in archive_to_keep(kept, files) if not d.keep}
    after = {d.file.name for d in archive_to_keep([*kept, RecoveryStart("extra", extra)], files) if not d.keep}
    assert after <= before


@given(starts, archives)
def test_applying_the_decision_again_deletes_nothing_more(kept: list[RecoveryStart], files: list[ArchivedFile]) -> None:
    survivors = [d.file for d in archive_to_keep(kept, files) if d.keep]
    assert all(d.keep for d in archive_to_keep(kept, survivors))
