"""Backup ids that sort by time (``20261125T143000Z-1a2b3c``) and the UTC timestamps of manifests.

Timestamps are written as ISO 8601 in UTC with a ``Z`` suffix and microseconds.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from backstream.errors import ConfigError

BACKUP_ID_PATTERN = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<suffix>[0-9a-f]{6})$")
"""``YYYYMMDDTHHMMSSZ-xxxxxx``: the UTC start second, then 24 random bits."""

_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """``2026-11-25T14:30:00.123456Z``; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """The inverse of ``format_time`` (accepts any ISO 8601 form ``fromisoformat`` reads)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def new_backup_id(moment: datetime | None = None) -> str:
    """A fresh backup id for a backup starting at ``moment`` (now by default)."""
    moment = moment or utc_now()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return f"{moment.astimezone(UTC).strftime(_STAMP_FORMAT)}-{secrets.token_hex(3)}"


def is_backup_id(text: str) -> bool:
    """True when ``text`` has the shape of a backup id."""
    return BACKUP_ID_PATTERN.match(text) is not None


def backup_id_time(backup_id: str) -> datetime:
    """The UTC second encoded in a backup id; a malformed id raises ConfigError."""
    match = BACKUP_ID_PATTERN.match(backup_id)
    if match is None:
        raise ConfigError(f"not a backup id: {backup_id!r} (expected e.g. 20261125T143000Z-1a2b3c)")
    return datetime.strptime(match["stamp"], _STAMP_FORMAT).replace(tzinfo=UTC)
