"""What backup and restore jobs share: source lookup by URL scheme, codec specs, progress, events.

Every plugin is reached through the ``Plugins`` registries by name or URL scheme, never imported.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from backstream.errors import ConfigError, UnknownPluginError
from backstream.plugins import Plugins
from backstream.progress import Progress
from backstream.protocols import BlockingChunks, ByteSource, CompressorFactory, SourceFactory, Storage
from backstream.repository import Repository, redact_url, url_scheme


@dataclass(frozen=True)
class CompressionSpec:
    """A compressor name and its options, parsed from ``zstd:3`` or ``zstd:level=3,threads=2``."""

    name: str
    options: dict[str, str]

    @classmethod
    def parse(cls, spec: str | None) -> CompressionSpec:
        if spec is None or spec.strip() == "":
            return cls("none", {})
        name, _, rest = spec.strip().partition(":")
        options: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in rest.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                key, value = "level", part
            if not key.strip() or not value.strip():
                raise ConfigError(f"bad compression option {part!r} in {spec!r} (expected e.g. zstd:3 or zstd:level=3)")
            options[key.strip()] = value.strip()
        if not name:
            raise ConfigError(f"bad compression spec {spec!r} (expected e.g. zstd:3, gzip:6 or none)")
        return cls(name.lower(), options)

    def __str__(self) -> str:
        if not self.options:
            return self.name
        return f"{self.name}:" + ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))


def source_factory(plugins: Plugins, url: str) -> tuple[str, SourceFactory]:
    """The source plugin (name, factory) that serves ``url``'s scheme; unknown schemes name the known ones."""
    scheme = url_scheme(url)
    registry = plugins.sources()
    known = sorted({s for entry in registry for s in entry.factory.schemes})
    if scheme is None:
        raise ConfigError(
            f"{redact_url(url)!r} is not a database URL (expected e.g. sqlite:///abs/path.db, "
            "postgresql://user@host/db, mysql://user@host/db)"
        )
    for entry in registry:
        if scheme in entry.factory.schemes:
            return entry.name, registry.get(entry.name)
    raise UnknownPluginError(f"no source plugin handles {scheme}:// URLs (known: {', '.join(known) or 'none'})")


def compressor(plugins: Plugins, name: str) -> CompressorFactory:
    return plugins.compressors().get(name)


async def open_repository(
    plugins: Plugins, repo: str | Repository, storage_options: Mapping[str, Any] | None = None
) -> Repository:
    """An opened repository from a URL (through the storage registry) or as given."""
    if isinstance(repo, Repository):
        return repo
    if not repo:
        raise ConfigError("no repository given: pass --repo URL or set BACKSTREAM_REPO")
    storage: Storage = plugins.open_storage(repo, **dict(storage_options or {}))
    return await Repository.open(storage)


@asynccontextmanager
async def counted(source: ByteSource, progress: Progress | None) -> AsyncIterator[AsyncIterator[bytes]]:
    """``source`` with ``progress(n)`` called for every chunk that passes."""
    async with source as chunks:
        if progress is None:
            yield chunks
            return
        if isinstance(chunks, BlockingChunks):  # keep it readable off the event loop
            yield _CountedBlocking(chunks, progress)
            return

        async def passing() -> AsyncIterator[bytes]:
            async for chunk in chunks:
                progress(len(chunk))
                yield chunk

        yield passing()


class _CountedBlocking:
    """A ``BlockingChunks`` stream that reports every chunk to ``progress`` (from the reading thread)."""

    def __init__(self, chunks: BlockingChunks, progress: Progress) -> None:
        self._chunks = chunks
        self._progress = progress

    def read_blocking(self, timeout: float) -> bytes | None:
        chunk = self._chunks.read_blocking(timeout)
        if chunk:
            self._progress(len(chunk))
        return chunk

    def __aiter__(self) -> _CountedBlocking:
        return self

    async def __anext__(self) -> bytes:
        chunk = await anext(self._chunks)
        self._progress(len(chunk))
        return chunk


def manifest_safe(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Source metadata as plain JSON values, with any password in a URL-looking string removed."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return redact_url(value) if "://" in value else value
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    plain: dict[str, Any] = json.loads(json.dumps(dict(metadata), default=str))
    cleaned: dict[str, Any] = clean(plain)
    return cleaned


def error_line(exc: BaseException) -> str:
    """The one-line description of an error for events and failure records."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
