"""The repository config file ``backstream.json``: format version, repository id, created-at.

Its presence is what makes a storage location a repository; ``init`` writes it once.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backstream.errors import RepositoryError
from backstream.repository.ids import format_time, parse_time, utc_now
from backstream.version import __version__

CONFIG_PATH = "backstream.json"
FORMAT_VERSION = 1
"""The repository layout version this code reads and writes."""


@dataclass(frozen=True)
class RepositoryConfig:
    """The contents of ``backstream.json``."""

    repository_id: str
    created_at: datetime
    format_version: int = FORMAT_VERSION
    created_by: str = f"backstream {__version__}"

    @classmethod
    def new(cls) -> RepositoryConfig:
        """A config for a repository created now, with a random id."""
        return cls(repository_id=uuid.uuid4().hex, created_at=utc_now())

    def to_json(self) -> bytes:
        document = {
            "format": "backstream-repository",
            "format_version": self.format_version,
            "repository_id": self.repository_id,
            "created_at": format_time(self.created_at),
            "created_by": self.created_by,
        }
        return (json.dumps(document, indent=2) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, *, where: str) -> RepositoryConfig:
        """Parse and validate ``backstream.json``; a newer format version asks for an upgrade."""
        try:
            document: Any = json.loads(data)
            if not isinstance(document, dict) or document.get("format") != "backstream-repository":
                raise ValueError("not a backstream repository config")
            version = document["format_version"]
            if not isinstance(version, int):
                raise ValueError("format_version is not an integer")
            config = cls(
                repository_id=str(document["repository_id"]),
                created_at=parse_time(str(document["created_at"])),
                format_version=version,
                created_by=str(document.get("created_by", "")),
            )
        except (ValueError, KeyError) as exc:
            raise RepositoryError(f"{where} is not a valid repository config: {exc}") from exc
        if config.format_version > FORMAT_VERSION:
            raise RepositoryError(
                f"{where} has repository format {config.format_version}, newer than this backstream "
                f"supports ({FORMAT_VERSION}); upgrade backstream"
            )
        return config
