"""Batch wal-push: while archiving one segment, archive the next ones PostgreSQL has marked ready,
and leave a marker for each, so that PostgreSQL's own later call for it returns at once.

PostgreSQL's archiver calls archive_command one file at a time and waits; each call pays the
interpreter's start, the storage set-up and, with a passphrase, a KDF. A batch pays them once for
up to N segments and uploads them concurrently. A marker (``pg_wal/backstream-pushed/<name>.ok``)
records the repository and the sha256 of what was archived; it is used only when the file still
has exactly that content and the repository is the same, and is deleted when used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os

from backstream.pitr.walnames import is_segment

MARK_DIR = "backstream-pushed"
"""Markers of segments a batch archived ahead, in the directory of the WAL file (pg_wal)."""


def _marks(source: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(source)), MARK_DIR)


def ready_followers(source: str, name: str, limit: int) -> list[str]:
    """Up to ``limit`` segments after ``name`` that PostgreSQL has marked ready to archive
    (``pg_wal/archive_status/<name>.ready``), in WAL order."""
    if limit <= 0 or not is_segment(name):
        return []
    status = os.path.join(os.path.dirname(os.path.abspath(source)), "archive_status")
    try:
        entries = os.listdir(status)
    except OSError:
        return []
    ready = sorted(entry[: -len(".ready")] for entry in entries if entry.endswith(".ready"))
    return [other for other in ready if is_segment(other) and other > name][:limit]


def record_pushed(source_dir: str, name: str, repo: str, sha256: str, size: int) -> None:
    """Leave the marker for ``name`` (archived ahead by a batch)."""
    marks = os.path.join(source_dir, MARK_DIR)
    os.makedirs(marks, mode=0o700, exist_ok=True)
    target = os.path.join(marks, name + ".ok")
    temporary = f"{target}.{os.getpid()}.partial"
    with open(temporary, "w") as handle:
        json.dump({"repo": repo, "sha256": sha256, "size": size}, handle)
    os.replace(temporary, target)


def already_pushed(source: str, name: str, repo: str) -> bool:
    """True when a batch already archived exactly the file at ``source`` as ``name`` in ``repo``.
    The marker is consumed either way, and markers of older segments are cleared."""
    marks = _marks(source)
    path = os.path.join(marks, name + ".ok")
    try:
        with open(path, "rb") as handle:
            mark = json.loads(handle.read())
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        mark = None
    with contextlib.suppress(OSError):
        os.unlink(path)
    _forget_older(marks, name)
    if not isinstance(mark, dict) or mark.get("repo") != repo:
        return False
    try:
        with open(source, "rb") as handle:
            data = handle.read()
    except OSError:
        return False  # the normal push reports it
    return len(data) == mark.get("size") and hashlib.sha256(data).hexdigest() == mark.get("sha256")


def _forget_older(marks: str, name: str) -> None:
    try:
        entries = os.listdir(marks)
    except OSError:
        return
    for entry in entries:
        if entry.endswith(".ok") and entry[: -len(".ok")] < name:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(marks, entry))
