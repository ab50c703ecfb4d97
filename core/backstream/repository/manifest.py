"""The backup manifest (``backups/<id>/manifest.json``): what a backup holds and how to read it back.

Writing it is the commit point of a backup; a backup directory without one does not exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from backstream.errors import RepositoryError
from backstream.repository.ids import format_time, is_backup_id, parse_time
from backstream.version import __version__

MANIFEST_FORMAT_VERSION = 1
STATUS_OK = "ok"
STATUS_FAILED = "failed"


@dataclass(frozen=True)
class ObjectRecord:
    """One stored object of a backup: where it is, what it is, and how to check and decode it.

    ``path`` is relative to the repository root. ``stored_size``/``stored_sha256`` describe the
    bytes in storage; ``plaintext_size`` the bytes the source produced. ``codec`` is the compressor
    name (``none`` when stored uncompressed); ``cipher`` is None for unencrypted objects.
    """

    name: str
    path: str
    stored_size: int
    stored_sha256: str
    plaintext_size: int
    codec: str
    codec_options: dict[str, str] = field(default_factory=dict)
    cipher: str | None = None
    key_refs: tuple[str, ...] = ()
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Informational: seconds each pipeline stage worked while the object was stored (e.g.
    ``catalog``, ``compress:zstd``, ``encrypt``, ``sink``), so a manifest says what its content
    fingerprints and codecs cost. Not used by any check; empty for older backups."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "path": self.path,
            "stored_size": self.stored_size,
            "stored_sha256": self.stored_sha256,
            "plaintext_size": self.plaintext_size,
            "codec": self.codec,
            "codec_options": dict(self.codec_options),
            "cipher": self.cipher,
            "key_refs": list(self.key_refs),
        }
        if self.stage_seconds:
            data["stage_seconds"] = dict(self.stage_seconds)
        return data

    def archive_fields(self, plaintext_sha256: str) -> dict[str, Any]:
        """The object's fields as the WAL and binlog records lay them out (flat, in this order, with
        the plaintext's sha256 and without codec options), so that their JSON stays as it was."""
        return {
            "name": self.name,
            "path": self.path,
            "plaintext_size": self.plaintext_size,
            "plaintext_sha256": plaintext_sha256,
            "stored_size": self.stored_size,
            "stored_sha256": self.stored_sha256,
            "codec": self.codec,
            "cipher": self.cipher,
            "key_refs": list(self.key_refs),
        }

    @classmethod
    def from_archive_fields(cls, data: dict[str, Any]) -> ObjectRecord:
        """The object named by a record laid out as ``archive_fields`` writes it (KeyError or
        ValueError when a field is missing or malformed)."""
        return cls(
            name=str(data["name"]),
            path=str(data["path"]),
            stored_size=int(data["stored_size"]),
            stored_sha256=str(data["stored_sha256"]),
            plaintext_size=int(data["plaintext_size"]),
            codec=str(data["codec"]),
            cipher=None if data.get("cipher") is None else str(data["cipher"]),
            key_refs=tuple(str(ref) for ref in data.get("key_refs") or ()),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectRecord:
        """The object as a manifest lists it: the archive fields plus its codec options."""
        options = {str(k): str(v) for k, v in dict(data.get("codec_options") or {}).items()}
        stages = {str(k): float(v) for k, v in dict(data.get("stage_seconds") or {}).items()}
        return replace(cls.from_archive_fields(data), codec_options=options, stage_seconds=stages)


@dataclass(frozen=True)
class SourceInfo:
    """Which database was backed up: plugin kind, redacted URL, and what the source recorded.

    ``metadata`` is what the source put in ``JobContext.metadata`` (server version, WAL LSNs,
    binlog coordinates, sizes, ...). ``url`` never contains a password.
    """

    kind: str
    url: str
    database: str | None = None
    server_version: str | None = None
    format: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "url": self.url,
            "database": self.database,
            "server_version": self.server_version,
            "format": self.format,
            "metadata": self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceInfo:
        def optional(key: str) -> str | None:
            value = data.get(key)
            return None if value is None else str(value)

        return cls(
            kind=str(data["kind"]),
            url=str(data["url"]),
            database=optional("database"),
            server_version=optional("server_version"),
            format=optional("format"),
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass(frozen=True)
class Manifest:
    """Everything known about one committed backup (or, with status ``failed``, one failed attempt)."""

    backup_id: str
    repository_id: str
    source: SourceInfo
    started_at: datetime
    finished_at: datetime
    objects: tuple[ObjectRecord, ...] = ()
    status: str = STATUS_OK
    kind: str = "full"
    parent: str | None = None
    host: str = ""
    tool_version: str = __version__
    error: str | None = None
    catalog: dict[str, Any] | None = None
    """Tables, row counts, columns, indexes and content checksums at backup time (docs/verification.md)."""

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def stored_size(self) -> int:
        return sum(obj.stored_size for obj in self.objects)

    @property
    def plaintext_size(self) -> int:
        return sum(obj.plaintext_size for obj in self.objects)

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def encrypted(self) -> bool:
        return any(obj.cipher for obj in self.objects)

    def sort_key(self) -> tuple[str, datetime]:
        """Order of backups in time: the id's second, then the precise start time."""
        return (self.backup_id[:16], self.started_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "backstream-manifest",
            "format_version": MANIFEST_FORMAT_VERSION,
            "backup_id": self.backup_id,
            "repository_id": self.repository_id,
            "status": self.status,
            "kind": self.kind,
            "parent": self.parent,
            "started_at": format_time(self.started_at),
            "finished_at": format_time(self.finished_at),
            "duration_seconds": round(self.duration_seconds, 6),
            "host": self.host,
            "tool": {"name": "backstream", "version": self.tool_version},
            "source": self.source.to_dict(),
            "objects": [obj.to_dict() for obj in self.objects],
            "plaintext_size": self.plaintext_size,
            "stored_size": self.stored_size,
            "error": self.error,
            "catalog": self.catalog,
        }

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, *, where: str) -> Manifest:
        """Parse and validate a manifest; anything malformed raises RepositoryError naming ``where``."""
        try:
            document: Any = json.loads(data)
            if not isinstance(document, dict) or document.get("format") != "backstream-manifest":
                raise ValueError("not a backstream manifest")
            version = document.get("format_version")
            if not isinstance(version, int) or version > MANIFEST_FORMAT_VERSION:
                raise ValueError(f"unsupported manifest format version {version!r}; upgrade backstream")
            backup_id = str(document["backup_id"])
            if not is_backup_id(backup_id):
                raise ValueError(f"bad backup id {backup_id!r}")
            tool = document.get("tool") or {}
            return cls(
                backup_id=backup_id,
                repository_id=str(document["repository_id"]),
                source=SourceInfo.from_dict(document["source"]),
                started_at=parse_time(str(document["started_at"])),
                finished_at=parse_time(str(document["finished_at"])),
                objects=tuple(ObjectRecord.from_dict(obj) for obj in document.get("objects") or ()),
                status=str(document["status"]),
                kind=str(document.get("kind", "full")),
                parent=None if document.get("parent") is None else str(document["parent"]),
                host=str(document.get("host", "")),
                tool_version=str(tool.get("version", "")),
                error=None if document.get("error") is None else str(document["error"]),
                catalog=_catalog(document.get("catalog")),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RepositoryError(f"{where} is not a valid manifest: {exc}") from exc


def _catalog(value: Any) -> dict[str, Any] | None:
    """The manifest's optional verification catalog: an object or absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("catalog is not an object")
    return value
