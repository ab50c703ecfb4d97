"""The run history in the state directory: one JSON line per attempt, appended and fsync'd.

``history.jsonl`` survives restarts and is what ``status`` and the missed-run catch-up read; a line
torn by a crash mid-write is skipped with a warning, never fatal.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from backstream.errors import ConfigError, os_reason
from backstream.repository.ids import format_time, parse_time

log = logging.getLogger(__name__)

HISTORY_FILE = "history.jsonl"
SUCCESS = "success"
FAILED = "failed"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
STATUSES = (SUCCESS, FAILED, TIMEOUT, CANCELLED)


@dataclass(frozen=True)
class RunRecord:
    """One attempt of one run of a job. ``final`` is true on the attempt that ended the run (it
    succeeded, or no retry follows); ``scheduled_for`` is the slot the run was for."""

    job: str
    kind: str
    run_id: str
    attempt: int
    trigger: str
    scheduled_for: datetime
    started_at: datetime
    finished_at: datetime
    status: str
    final: bool
    backup_id: str | None = None
    bytes: int | None = None
    error: str | None = None
    trigger_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == SUCCESS

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        for key in ("scheduled_for", "started_at", "finished_at"):
            document[key] = format_time(document[key])
        document["duration_seconds"] = round(self.duration_seconds, 3)
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> RunRecord:
        return cls(
            job=str(document["job"]),
            kind=str(document["kind"]),
            run_id=str(document["run_id"]),
            attempt=int(document["attempt"]),
            trigger=str(document["trigger"]),
            scheduled_for=parse_time(str(document["scheduled_for"])),
            started_at=parse_time(str(document["started_at"])),
            finished_at=parse_time(str(document["finished_at"])),
            status=str(document["status"]),
            final=bool(document["final"]),
            backup_id=_optional_str(document.get("backup_id")),
            bytes=None if document.get("bytes") is None else int(document["bytes"]),
            error=_optional_str(document.get("error")),
            trigger_id=_optional_str(document.get("trigger_id")),
        )


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


class History:
    """The append-only history file of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / HISTORY_FILE

    def append(self, record: RunRecord) -> None:
        """Add ``record`` durably: one ``write`` of the whole line on an O_APPEND descriptor, then
        fsync (blocking: call it from a worker thread)."""
        line = (json.dumps(record.to_dict(), sort_keys=True) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise ConfigError(f"cannot write the run history {self.path}: {os_reason(exc)}") from exc

    def records(self) -> Iterator[RunRecord]:
        """Every record, oldest first; unreadable lines are skipped with a warning."""
        try:
            handle = open(self.path, encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ConfigError(f"cannot read the run history {self.path}: {os_reason(exc)}") from exc
        with handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    yield RunRecord.from_dict(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    log.warning("%s:%d: skipping an unreadable history line", self.path, number)

    def summary(self) -> dict[str, JobHistory]:
        """Per job: its last record, last success and last failure."""
        return summarize(self.records())


@dataclass
class JobHistory:
    """What the history says about one job."""

    last: RunRecord | None = None
    last_final: RunRecord | None = None
    last_success: RunRecord | None = None
    last_failure: RunRecord | None = None


def summarize(records: Iterable[RunRecord]) -> dict[str, JobHistory]:
    jobs: dict[str, JobHistory] = {}
    for record in records:
        job = jobs.setdefault(record.job, JobHistory())
        job.last = record
        if record.final:
            job.last_final = record
        if record.ok:
            job.last_success = record
        elif record.status != CANCELLED:
            job.last_failure = record
    return jobs
