"""Whether the WAL archive holds every segment a physical base backup needs to replay up to a later one:
the first missing segment on the backup's timeline, from the archive's listing alone (no record is read).
"""

from __future__ import annotations

from typing import Any

from backstream.repository import Manifest

from backstream_plugins.postgresql.walnames import (
    DEFAULT_SEGMENT_SIZE,
    SIDECAR_SUFFIX,
    WAL_PREFIX,
    is_segment,
    parse_lsn,
    segment_name,
    segment_number,
)


async def archived_names(storage: Any, *, with_objects: bool = False) -> set[str]:
    """The names of the committed WAL files in the archive (those whose ``.json`` record exists);
    with ``with_objects``, only those whose stored object is listed too (``<name>`` plus at most
    one extension, the compressor's)."""
    paths = await storage.list(WAL_PREFIX)
    names = {path.rsplit("/", 1)[-1][: -len(SIDECAR_SUFFIX)] for path in paths if path.endswith(SIDECAR_SUFFIX)}
    if not with_objects:
        return names
    stored = set()
    for path in paths:
        filename = path.rsplit("/", 1)[-1]
        if path.endswith(SIDECAR_SUFFIX) or filename.startswith("."):
            continue
        stored.add(filename)
        stem, dot, _ = filename.rpartition(".")
        if dot and stem:
            stored.add(stem)  # "<name>.zst" stands for <name>; "<name>.partial.zst" for "<name>.partial"
    return names & stored


def segment_size_of(manifest: Manifest) -> int:
    return int(manifest.source.metadata.get("wal_segment_size") or DEFAULT_SEGMENT_SIZE)


def needed_from(manifest: Manifest) -> str | None:
    """The first segment a physical backup needs from the archive to replay past its end; None when
    the manifest does not say.

    With ``wal=none`` that is its start segment. With ``wal=fetch`` the WAL up to the stop is inside
    the tar: a backup from a primary (``BACKUP FROM: primary``, whose stop switched to a new
    segment) needs the segment after its stop segment; one from a standby, or older manifests that
    did not record where they came from, the stop segment itself (the tar's copy may be partial).
    """
    metadata = manifest.source.metadata
    if metadata.get("wal_method") != "fetch":
        first = metadata.get("start_wal")
        return str(first) if first and is_segment(str(first)) else None
    stop = metadata.get("stop_wal")
    if not stop or not is_segment(str(stop)):
        return None
    if metadata.get("backup_from") != "primary":
        return str(stop)
    size = segment_size_of(manifest)
    return segment_name(int(str(stop)[:8], 16), segment_number(str(stop), size) + 1, size)


def first_missing(names: set[str], first: str, last: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> str | None:
    """The first segment from ``first`` to ``last`` (the same timeline; both included) that is not
    in ``names``; None when all are there (or ``last`` comes before ``first``)."""
    timeline = int(first[:8], 16)
    if int(last[:8], 16) != timeline:
        raise ValueError(f"{first} and {last} are on different timelines")
    end = segment_number(last, segment_size)
    number = segment_number(first, segment_size)
    while number <= end:
        name = segment_name(timeline, number, segment_size)
        if name not in names:
            return name
        number += 1
    return None


def backup_gap(names: set[str], manifest: Manifest) -> tuple[str, bool] | None:
    """The first WAL segment a base backup needs that ``names`` (the archive) lacks, up to the newest
    archived segment of its timeline, and whether later segments are there (a hole) or the archive
    simply ends before it; None when nothing is missing (or the backup records no WAL range)."""
    first = needed_from(manifest)
    if first is None:
        return None
    on_timeline = [name for name in names if is_segment(name) and name[:8] == first[:8]]
    if not on_timeline or max(on_timeline) < first:
        return first, False
    missing = first_missing(names, first, max(on_timeline), segment_size_of(manifest))
    return None if missing is None else (missing, True)


def archive_cluster(manifests: list[Manifest]) -> str | None:
    """The system identifier of the cluster whose WAL the archive holds, as its backups tell: that
    of the newest backup that needs the archive (``wal=none``), else of the newest backup."""
    needing = [m for m in manifests if m.source.metadata.get("wal_method") != "fetch"]
    for manifest in reversed(needing or manifests):
        if manifest.source.metadata.get("system_identifier"):
            return str(manifest.source.metadata["system_identifier"])
    return None


async def archive_holes(storage: Any, manifests: list[Manifest]) -> dict[str, list[str]]:
    """WAL segments missing from the archive between segments that are there, each with the
    physical base backups (oldest first) it cuts off, from the listing alone: what ``check``
    reports. Backups of another cluster than the archive's are left out."""
    names = await archived_names(storage, with_objects=True)
    cluster = archive_cluster(manifests)
    holes: dict[str, list[str]] = {}
    for manifest in manifests:
        if cluster is not None and str(manifest.source.metadata.get("system_identifier")) != cluster:
            continue
        gap = backup_gap(names, manifest)
        if gap is not None and gap[1]:
            holes.setdefault(gap[0], []).append(manifest.backup_id)
    return holes


class NotInHistory(ValueError):
    """A backup's timeline is not an ancestor of the current one (another branch of history)."""


def parse_history(text: str) -> list[tuple[int, int]]:
    """A timeline history file (``0000000N.history``): ``(timeline, switch LSN)`` per ancestor of
    timeline N, oldest first: each timeline ended where the next one began."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        entries.append((int(fields[0]), parse_lsn(fields[1])))
    return entries


def first_missing_across(
    names: set[str], first: str, last: str, history: list[tuple[int, int]], segment_size: int = DEFAULT_SEGMENT_SIZE
) -> str | None:
    """Like ``first_missing``, from ``first`` on an older timeline to ``last`` on the timeline whose
    ``history`` is given: each ancestor's segments up to the one holding its switch point (which
    the next timeline's file of the same number holds), then the next timeline's history file and
    segments. NotInHistory when ``first``'s timeline is not an ancestor."""
    start_timeline, end_timeline = int(first[:8], 16), int(last[:8], 16)
    if start_timeline == end_timeline:
        return first_missing(names, first, last, segment_size)
    chain = [timeline for timeline, _ in history]
    if start_timeline not in chain:
        raise NotInHistory(f"timeline {start_timeline} is not an ancestor of timeline {end_timeline}")
    number = segment_number(first, segment_size)
    for index in range(chain.index(start_timeline), len(history)):
        timeline, switch = history[index]
        switch_segment = switch // segment_size
        if number <= switch_segment - 1:
            gap = first_missing(
                names,
                segment_name(timeline, number, segment_size),
                segment_name(timeline, switch_segment - 1, segment_size),
                segment_size,
            )
            if gap is not None:
                return gap
        following = history[index + 1][0] if index + 1 < len(history) else end_timeline
        if f"{following:08X}.history" not in names:
            return f"{following:08X}.history"
        number = max(number, switch_segment)
    return first_missing(names, segment_name(end_timeline, number, segment_size), last, segment_size)
