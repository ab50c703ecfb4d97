"""Whether the WAL archive holds every segment a physical base backup needs to replay up to a later one:
the first missing segment on the backup's timeline, from the archive's listing alone (no record is read).
"""

from __future__ import annotations

from typing import Any

from backstream.pitr.walnames import (
    DEFAULT_SEGMENT_SIZE,
    SIDECAR_SUFFIX,
    WAL_PREFIX,
    is_segment,
    segment_name,
    segment_number,
)
from backstream.repository import Manifest


async def archived_names(storage: Any) -> set[str]:
    """The names of the committed WAL files in the archive (those whose ``.json`` record exists)."""
    names = set()
    for path in await storage.list(WAL_PREFIX):
        if path.endswith(SIDECAR_SUFFIX):
            names.add(path.rsplit("/", 1)[-1][: -len(SIDECAR_SUFFIX)])
    return names


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
