"""Retention as a specification: examples for each rule, and hypothesis properties for safety.

``decide`` is pure, so every property is checked over arbitrary backup histories.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from backstream.errors import ConfigError
from backstream.retention import Backup, Policy, decide, format_duration, parse_duration
from hypothesis import given, settings
from hypothesis import strategies as st

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def daily(n: int, *, status: str = "complete") -> list[Backup]:
    return [Backup(id=f"b{i:03d}", time=NOW - timedelta(days=i, hours=1), status=status) for i in range(n)]


def kept_ids(backups: list[Backup], policy: Policy, now: datetime = NOW) -> set[str]:
    return {d.backup.id for d in decide(backups, policy, now) if d.keep}


def test_an_empty_policy_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least one rule"):
        decide(daily(3), Policy(), NOW)


def test_keep_last_keeps_the_n_newest() -> None:
    assert kept_ids(daily(10), Policy(keep_last=3)) == {"b000", "b001", "b002"}


def test_keep_within_keeps_backups_younger_than_the_duration() -> None:
    assert kept_ids(daily(10), Policy(keep_within=timedelta(days=4))) == {"b000", "b001", "b002", "b003"}


def test_daily_keeps_the_newest_backup_of_each_of_the_last_n_days() -> None:
    backups = [
        Backup("morning", NOW.replace(hour=6)),
        Backup("noon", NOW.replace(hour=11)),
        Backup("yesterday-early", NOW.replace(hour=1) - timedelta(days=1)),
        Backup("yesterday-late", NOW.replace(hour=23) - timedelta(days=1)),
        Backup("older", NOW - timedelta(days=2)),
    ]
    assert kept_ids(backups, Policy(daily=2)) == {"noon", "yesterday-late"}


def test_weekly_monthly_and_yearly_combine() -> None:
    backups = daily(800)
    kept = kept_ids(backups, Policy(weekly=4, monthly=6, yearly=3))
    assert "b000" in kept
    assert len(kept) <= 4 + 6 + 3


def test_the_newest_complete_backup_is_kept_even_when_no_rule_matches() -> None:
    old = [Backup("old", NOW - timedelta(days=400))]
    decision = decide(old, Policy(keep_within=timedelta(days=1)), NOW)[0]
    assert decision.keep and "newest complete backup" in decision.reasons


def test_running_failed_and_future_backups() -> None:
    backups = [
        Backup("running", NOW - timedelta(days=30), status="running"),
        Backup("failed", NOW - timedelta(days=1), status="failed"),
        Backup("future", NOW + timedelta(days=1)),
        Backup("good", NOW - timedelta(days=2)),
    ]
    decisions = {d.backup.id: d for d in decide(backups, Policy(keep_last=1), NOW)}
    assert decisions["running"].keep and "in progress" in decisions["running"].reasons
    assert decisions["future"].keep and "dated in the future" in decisions["future"].reasons
    assert decisions["good"].keep
    assert not decisions["failed"].keep and decisions["failed"].reasons == ("matched no rule",)


def test_a_kept_backup_keeps_what_it_depends_on_transitively() -> None:
    backups = [
        Backup("full", NOW - timedelta(days=10)),
        Backup("incr1", NOW - timedelta(days=9), depends_on=("full",)),
        Backup("incr2", NOW - timedelta(days=8), depends_on=("incr1",)),
    ]
    decisions = {d.backup.id: d for d in decide(backups, Policy(keep_last=1), NOW)}
    assert decisions["incr1"].keep and decisions["incr1"].reasons == ("needed by incr2",)
    assert decisions["full"].keep and decisions["full"].reasons == ("needed by incr1",)


def test_every_decision_explains_itself() -> None:
    for decision in decide(daily(20), Policy(keep_last=2, weekly=2), NOW):
        assert decision.reasons


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("1w2d", timedelta(days=9)),
        ("90m", timedelta(minutes=90)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "3x", "1d-2h"])
def test_bad_durations_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="cannot read duration"):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ["30d", "2w", "12h", "1y", "90s", "45m"]:
        assert format_duration(parse_duration(text)) == text


# --- properties ---------------------------------------------------------------------------

statuses = st.sampled_from(["complete", "complete", "complete", "running", "failed"])


@st.composite
def histories(draw: st.DrawFn) -> list[Backup]:
    count = draw(st.integers(min_value=0, max_value=40))
    offsets = draw(
        st.lists(st.integers(min_value=-3 * 86400, max_value=3 * 365 * 86400), min_size=count, max_size=count)
    )
    backups: list[Backup] = []
    for index, offset in enumerate(offsets):
        parent = draw(st.sampled_from([None, *[b.id for b in backups]])) if backups else None
        backups.append(
            Backup(
                id=f"b{index:02d}",
                time=NOW - timedelta(seconds=offset),
                status=draw(statuses),
                depends_on=(parent,) if parent else (),
            )
        )
    return backups


policies = st.builds(
    Policy,
    keep_last=st.none() | st.integers(1, 10),
    keep_within=st.none() | st.integers(0, 400).map(lambda d: timedelta(days=d)),
    hourly=st.none() | st.integers(1, 30),
    daily=st.none() | st.integers(1, 30),
    weekly=st.none() | st.integers(1, 12),
    monthly=st.none() | st.integers(1, 12),
    yearly=st.none() | st.integers(1, 5),
).filter(lambda p: not p.is_empty())


@given(histories(), policies)
@settings(max_examples=300, deadline=None)
def test_property_never_deletes_what_must_survive(backups: list[Backup], policy: Policy) -> None:
    decisions = {d.backup.id: d for d in decide(backups, policy, NOW)}
    assert set(decisions) == {b.id for b in backups}
    complete = [b for b in backups if b.status == "complete" and b.time <= NOW]
    if complete:
        newest = max(complete, key=lambda b: (b.time, b.id))
        assert decisions[newest.id].keep
    for backup in backups:
        if backup.status == "running" or backup.time > NOW:
            assert decisions[backup.id].keep
        if decisions[backup.id].keep:
            for needed in backup.depends_on:
                assert decisions[needed].keep


@given(histories(), policies)
@settings(max_examples=300, deadline=None)
def test_property_applying_twice_deletes_nothing_more(backups: list[Backup], policy: Policy) -> None:
    survivors = [d.backup for d in decide(backups, policy, NOW) if d.keep]
    again = decide(survivors, policy, NOW)
    assert all(d.keep for d in again)


@given(histories(), st.sampled_from(["hourly", "daily", "weekly", "monthly", "yearly"]), st.integers(1, 20))
@settings(max_examples=300, deadline=None)
def test_property_gfs_keeps_at_most_one_per_bucket_and_the_newest(backups: list[Backup], rule: str, count: int) -> None:
    from backstream.retention import _BUCKETS

    bucket_of = dict(_BUCKETS)[rule]
    decisions = decide(backups, Policy(**{rule: count}), NOW)
    by_rule = [d.backup for d in decisions if any(r.startswith(f"{rule} ") for r in d.reasons)]
    buckets = Counter(bucket_of(b.time) for b in by_rule)
    assert all(n == 1 for n in buckets.values())
    assert len(by_rule) <= count
    complete = [b for b in backups if b.status == "complete" and b.time <= NOW]
    for kept in by_rule:
        same_bucket = [b for b in complete if bucket_of(b.time) == bucket_of(kept.time)]
        assert kept == max(same_bucket, key=lambda b: (b.time, b.id))
