"""Retention policies (keep-last, keep-within, GFS) as a pure function from backups to decisions.

No I/O: ``decide(backups, policy, now)`` says keep or delete, with the reasons, for each backup.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from backstream.errors import ConfigError

COMPLETE = "complete"
RUNNING = "running"


@dataclass(frozen=True)
class Backup:
    """What retention needs to know of one backup."""

    id: str
    time: datetime  # when it started; timezone-aware
    status: str = COMPLETE  # "complete", "running" or "failed"
    depends_on: tuple[str, ...] = ()  # backups this one needs to be restorable (e.g. its parent)


@dataclass(frozen=True)
class Policy:
    """Which backups to keep; rules combine (a backup is kept if any rule keeps it)."""

    keep_last: int | None = None
    keep_within: timedelta | None = None
    hourly: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None
    yearly: int | None = None

    def is_empty(self) -> bool:
        return all(value is None for value in vars(self).values())


@dataclass(frozen=True)
class Decision:
    """Keep or delete one backup, and every reason that applies."""

    backup: Backup
    keep: bool
    reasons: tuple[str, ...]


_BUCKETS: tuple[tuple[str, Callable[[datetime], Hashable]], ...] = (
    ("hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("daily", lambda t: t.date()),
    ("weekly", lambda t: t.isocalendar()[:2]),
    ("monthly", lambda t: (t.year, t.month)),
    ("yearly", lambda t: t.year),
)


def decide(backups: Iterable[Backup], policy: Policy, now: datetime) -> list[Decision]:
    """Apply ``policy`` at time ``now``; returns one decision per backup, newest first.

    Always kept, whatever the policy: the newest complete backup, running backups, backups dated
    after ``now``, and every backup a kept backup depends on (transitively).
    """
    if policy.is_empty():
        raise ConfigError("a retention policy needs at least one rule (e.g. --keep-last 7); refusing to prune")
    ordered = sorted(backups, key=lambda b: (b.time, b.id), reverse=True)
    reasons: dict[str, list[str]] = {b.id: [] for b in ordered}
    complete = [b for b in ordered if b.status == COMPLETE and b.time <= now]

    for backup in ordered:
        if backup.status == RUNNING:
            reasons[backup.id].append("in progress")
        if backup.time > now:
            reasons[backup.id].append("dated in the future")
    if complete:
        reasons[complete[0].id].append("newest complete backup")
    if policy.keep_last:
        for backup in complete[: policy.keep_last]:
            reasons[backup.id].append(f"within the last {policy.keep_last}")
    if policy.keep_within is not None:
        for backup in complete:
            if now - backup.time <= policy.keep_within:
                reasons[backup.id].append(f"within {format_duration(policy.keep_within)}")
    for rule, bucket_of in _BUCKETS:
        count = getattr(policy, rule)
        if not count:
            continue
        seen: set[Hashable] = set()
        for backup in complete:  # newest first: the first one met in a bucket is its newest
            bucket = bucket_of(backup.time)
            if bucket in seen:
                continue
            seen.add(bucket)
            reasons[backup.id].append(f"{rule} {len(seen)}/{count}")
            if len(seen) == count:
                break

    _keep_dependencies(ordered, reasons)
    return [
        Decision(backup=b, keep=bool(reasons[b.id]), reasons=tuple(reasons[b.id]) or ("matched no rule",))
        for b in ordered
    ]


def _keep_dependencies(ordered: Sequence[Backup], reasons: dict[str, list[str]]) -> None:
    by_id = {b.id: b for b in ordered}
    pending = [b.id for b in ordered if reasons[b.id]]
    while pending:
        kept = by_id[pending.pop()]
        for needed in kept.depends_on:
            if needed not in by_id:
                continue
            note = f"needed by {kept.id}"
            if note not in reasons[needed]:
                first = not reasons[needed]
                reasons[needed].append(note)
                if first:
                    pending.append(needed)


_DURATION = re.compile(r"(\d+)([smhdwy])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_duration(text: str) -> timedelta:
    """Parse ``30d``, ``12h``, ``1y2w``, ``90m``, ``45s`` into a timedelta."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ConfigError(f"cannot read duration {text!r}: use e.g. 30d, 12h, 2w, 1y")
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))


def format_duration(delta: timedelta) -> str:
    """The shortest ``parse_duration`` spelling of ``delta`` (whole seconds)."""
    seconds = int(delta.total_seconds())
    for unit in "ywdhm":
        size = _UNIT_SECONDS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# --- archived WAL segments and binlogs ---------------------------------------------------------


@dataclass(frozen=True)
class ArchivedFile:
    """One archived WAL segment or binlog file and its place in the archive's order.

    ``position`` sorts files in replay order: ``(sequence,)`` for a binlog ``mariadb-bin.000042``,
    ``(timeline, segment number)`` for a WAL segment name.
    """

    name: str
    position: tuple[int, ...]


@dataclass(frozen=True)
class RecoveryStart:
    """Where a kept backup's recovery starts: the position of the first archived file it needs
    (the binlog file of its recorded coordinates, the WAL segment of its start LSN)."""

    backup_id: str
    position: tuple[int, ...]


@dataclass(frozen=True)
class ArchiveDecision:
    """Keep or delete one archived file, and why."""

    file: ArchivedFile
    keep: bool
    reasons: tuple[str, ...]


def archive_to_keep(starts: Iterable[RecoveryStart], archived: Iterable[ArchivedFile]) -> list[ArchiveDecision]:
    """Which archived files the kept backups' recovery windows need; one decision per file, oldest first.

    A kept backup needs every file from its start position onward (it can be rolled forward to any
    later moment), so a file is deleted only when it lies wholly before the oldest kept backup's start.
    Without any start, nothing is deleted.
    """
    anchors = sorted(starts, key=lambda s: (s.position, s.backup_id))
    files = sorted(archived, key=lambda f: (f.position, f.name))
    if not anchors:
        reason = ("no kept backup records where its recovery starts",)
        return [ArchiveDecision(file=f, keep=True, reasons=reason) for f in files]
    oldest = anchors[0]
    decisions = []
    for archived_file in files:
        if archived_file.position < oldest.position:
            decisions.append(
                ArchiveDecision(
                    file=archived_file,
                    keep=False,
                    reasons=(f"before the start of the oldest kept backup {oldest.backup_id}",),
                )
            )
            continue
        covering = [s for s in anchors if s.position <= archived_file.position]
        decisions.append(
            ArchiveDecision(
                file=archived_file,
                keep=True,
                reasons=(f"in the recovery window of {covering[-1].backup_id}",)
                + ((f"and of {len(covering) - 1} older kept backup(s)",) if len(covering) > 1 else ()),
            )
        )
    return decisions
