"""Where archived binlogs live in a repository and what is recorded about each one.

``binlog/<server-id>/<file><ext>`` holds the stored object; ``binlog/<server-id>/<file>.json`` is its record
(sizes, hashes, codec, cipher, first/last event time), written last: the commit point of one archived file.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from backstream.errors import ConfigError, RepositoryError
from backstream.repository import ObjectRecord
from backstream.repository.ids import format_time, parse_time

BINLOG_PREFIX = "binlog/"
RECORD_SUFFIX = ".json"
MAGIC = b"\xfebin"
HEADER = struct.Struct("<IBIIIH")
"""The v4 event header: timestamp, type, server id, event length, next position, flags."""

START_ENCRYPTION_EVENT = 164
"""After this MariaDB event the rest of the file is encrypted; its headers cannot be read."""

_NAME = re.compile(r"^(?P<base>[A-Za-z0-9_.-]+)\.(?P<seq>\d{6,})$")


def binlog_sequence(name: str) -> tuple[str, int]:
    """``mariadb-bin.000042`` -> ``("mariadb-bin", 42)``; anything else is a ConfigError."""
    match = _NAME.match(name)
    if match is None or "/" in name:
        raise ConfigError(f"{name!r} is not a binlog file name (expected e.g. mariadb-bin.000042)")
    return match["base"], int(match["seq"])


def server_prefix(server_id: int) -> str:
    return f"{BINLOG_PREFIX}{server_id}/"


def record_path(server_id: int, name: str) -> str:
    binlog_sequence(name)
    return f"{server_prefix(server_id)}{name}{RECORD_SUFFIX}"


def object_path(server_id: int, name: str, extension: str) -> str:
    binlog_sequence(name)
    return f"{server_prefix(server_id)}{name}{extension}"


def encryption_context(repository_id: str, server_id: int, name: str, codec: str) -> dict[str, str]:
    """The context bound into an encrypted binlog object (rebuilt and checked on replay)."""
    return {
        "repository_id": repository_id,
        "binlog_server_id": str(server_id),
        "binlog_file": name,
        "codec": codec,
    }


@dataclass(frozen=True)
class EventSpan:
    """What the event headers of one binlog file say: first and last event time, event count."""

    first_event: datetime | None
    last_event: datetime | None
    events: int
    size: int
    readable: bool = True  # False after a START_ENCRYPTION event (server-side binlog encryption)


def scan_events(path: str) -> EventSpan:
    """Walk the event headers of a local binlog file (no event bodies are parsed).

    Timestamps in binlog headers are UTC epoch seconds; events stamped 0 (artificial ones) are ignored.
    """
    first: int | None = None
    last: int | None = None
    events = 0
    readable = True
    with open(path, "rb") as handle:
        if handle.read(4) != MAGIC:
            raise RepositoryError(f"{path} is not a binlog file (bad magic)")
        position = 4
        while True:
            handle.seek(position)
            raw = handle.read(HEADER.size)
            if len(raw) < HEADER.size:
                break
            timestamp, kind, _server, length, _next, _flags = HEADER.unpack(raw)
            if length < HEADER.size:
                raise RepositoryError(f"{path}: corrupt event header at position {position}")
            events += 1
            if timestamp:
                first = timestamp if first is None else first
                last = timestamp if last is None else max(last, timestamp)
            position += length
            if kind == START_ENCRYPTION_EVENT:
                readable = False
                break
        handle.seek(0, 2)
        size = handle.tell()

    def moment(value: int | None) -> datetime | None:
        return None if value is None else datetime.fromtimestamp(value, UTC)

    return EventSpan(moment(first), moment(last), events, size, readable)


@dataclass(frozen=True)
class BinlogRecord:
    """The committed record of one archived binlog file: its server, the stored object (named after
    the file), the plaintext's sha256, its first and last event times, when and from where it was archived."""

    server_id: int
    object: ObjectRecord
    plaintext_sha256: str
    first_event: datetime | None
    last_event: datetime | None
    archived_at: datetime
    source: str = ""

    @property
    def name(self) -> str:
        return self.object.name

    @property
    def sequence(self) -> int:
        return binlog_sequence(self.name)[1]

    def to_json(self) -> bytes:
        def when(value: datetime | None) -> str | None:
            return None if value is None else format_time(value)

        document = {
            "format": "backstream-binlog",
            "format_version": 1,
            "server_id": self.server_id,
            **self.object.archive_fields(self.plaintext_sha256),
            "first_event": when(self.first_event),
            "last_event": when(self.last_event),
            "archived_at": format_time(self.archived_at),
            "source": self.source,
        }
        return (json.dumps(document, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, *, where: str) -> BinlogRecord:
        try:
            document: Any = json.loads(data)
            if not isinstance(document, dict) or document.get("format") != "backstream-binlog":
                raise ValueError("not a backstream binlog record")

            def when(key: str) -> datetime | None:
                value = document.get(key)
                return None if value is None else parse_time(str(value))

            record = cls(
                server_id=int(document["server_id"]),
                object=ObjectRecord.from_archive_fields(document),
                plaintext_sha256=str(document["plaintext_sha256"]),
                first_event=when("first_event"),
                last_event=when("last_event"),
                archived_at=parse_time(str(document["archived_at"])),
                source=str(document.get("source", "")),
            )
            binlog_sequence(record.name)
        except (ValueError, KeyError, TypeError, ConfigError) as exc:
            raise RepositoryError(f"{where} is not a valid binlog record: {exc}") from exc
        return record
