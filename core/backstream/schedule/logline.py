"""The daemon's structured log: one line per job start and end (and per reload, retry, stop),
as ``key=value`` text or, with ``--log-format json``, one JSON object per line."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO

from backstream.repository.ids import format_time, utc_now

FORMATS = ("text", "json")


class EventLog:
    """Writes event lines to ``stream`` (default stderr), each flushed at once."""

    def __init__(self, log_format: str = "text", stream: TextIO | None = None) -> None:
        if log_format not in FORMATS:
            raise ValueError(f"log format must be one of {', '.join(FORMATS)}")
        self.format = log_format
        self.stream = stream
        self._lock = threading.Lock()

    def emit(self, event: str, fields: Mapping[str, Any]) -> None:
        present = {key: value for key, value in fields.items() if value is not None}
        document = {"time": format_time(utc_now()), "event": event, **present}
        if self.format == "json":
            line = json.dumps(document, ensure_ascii=False, default=str)
        else:
            line = " ".join(f"{key}={_text(value)}" for key, value in document.items())
        stream = self.stream or sys.stderr
        with self._lock:
            stream.write(line + "\n")
            stream.flush()


def _text(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text
