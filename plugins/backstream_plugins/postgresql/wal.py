"""The WAL archive: ``push`` (archive_command) and ``fetch`` (restore_command) of PostgreSQL WAL files.

Each file is stored compressed (and encrypted when keys are configured) at ``wal/<tl>/<name><ext>``;
a small JSON record ``wal/<tl>/<name>.json`` written after it is the commit point and holds the
plaintext sha256 that makes a retried push of identical content a no-op. Both directions go
through the core's object path (``backstream.repository.objects``), like a backup's objects.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backstream import ConfigError, RepositoryError
from backstream.repository import ObjectRecord

from backstream_plugins.postgresql.walconfig import WalConfig
from backstream_plugins.postgresql.walnames import (
    check_wal_name,
    is_segment,
    object_path,
    segment_name,
    segment_number,
    sidecar_path,
)

if TYPE_CHECKING:
    from backstream import Plugins
    from backstream.jobs import KeyOptions
    from backstream.repository import Repository

RECORD_FORMAT = "backstream-wal"
SPOOL_DIR = "backstream-spool"
"""Prefetched segments wait here, next to the restore target (pg_wal/backstream-spool)."""
MAX_WAL_FILE = 1024 * 1024 * 1024
"""Largest WAL file accepted (wal_segment_size is at most 1 GiB)."""


class WalNotFound(RepositoryError):
    """The archive has no such WAL file (wal-fetch exits 1: PostgreSQL's end of archive)."""


class WalConflict(RepositoryError):
    """A different file with the same name is already archived."""


@dataclass(frozen=True)
class WalRecord:
    """What the archive knows about one WAL file: the stored object (named after the file), the
    plaintext's sha256, and when it was archived (seconds since the epoch)."""

    object: ObjectRecord
    plaintext_sha256: str
    archived_at: float

    @property
    def name(self) -> str:
        return self.object.name

    def to_json(self) -> bytes:
        document = {
            "format": RECORD_FORMAT,
            "version": 1,
            **self.object.archive_fields(self.plaintext_sha256),
            "archived_at": self.archived_at,
        }
        return (json.dumps(document, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> WalRecord:
        try:
            doc: dict[str, Any] = json.loads(data)
            if doc.get("format") != RECORD_FORMAT:
                raise ValueError("not a backstream WAL record")
            stored = ObjectRecord.from_archive_fields(doc)
            return cls(stored, str(doc["plaintext_sha256"]), float(doc.get("archived_at") or 0.0))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RepositoryError(f"{where} is not a valid WAL record: {exc}") from exc


def wal_context(repository_id: str, name: str, codec: str) -> dict[str, str]:
    """The context bound into an encrypted WAL object's header."""
    return {"kind": "wal", "repository_id": repository_id, "object": name, "codec": codec}


def _wal_size(path: str) -> int:
    """The size of the WAL file at ``path``; one ConfigError line when it cannot be read or is too large."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise ConfigError(f"cannot read WAL file {path}: {exc.strerror or exc}") from exc
    if size > MAX_WAL_FILE:
        raise ConfigError(f"{path} is larger than 1 GiB; not a WAL file")
    return size


def _file_sha256(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise ConfigError(f"cannot read WAL file {path}: {exc.strerror or exc}") from exc


def _conflict(name: str, archived: str, new: str) -> WalConflict:
    return WalConflict(
        f"{name} is already archived with different content (sha256 {archived[:16]}..., "
        f"new {new[:16]}...); refusing to overwrite it — is a second cluster archiving into this repository?"
    )


# --- public entry points ---------------------------------------------------------------------


def push(config: WalConfig, source: str, *, name: str | None = None) -> bool:
    """Archive the WAL file at ``source``; True if stored, False if the identical file was already there."""
    from backstream.runtime import run_async

    checked = check_wal_name(name or os.path.basename(source))
    return run_async(lambda: _push(config, source, checked))


def fetch(config: WalConfig, name: str, target: str) -> None:
    """Restore archived ``name`` to the path ``target``; WalNotFound when it is not archived.

    With ``config.prefetch`` N > 0, a segment is served from the spool (``pg_wal/backstream-spool``)
    when a background prefetch already fetched it, and afterwards a detached child process fetches
    the next N segments of the timeline into the spool, so replay need not wait for each download.
    """
    check_wal_name(name)
    if not config.prefetch or not is_segment(name):
        _fetch_direct(config, name, target)
        return
    spool = os.path.join(os.path.dirname(os.path.abspath(target)), SPOOL_DIR)
    if not _take_spooled(spool, name, target):
        _fetch_direct(config, name, target)
    _start_prefetch(config, spool, name)


def _take_spooled(spool: str, name: str, target: str) -> bool:
    """Move a prefetched ``name`` into place (and forget spooled segments older than it)."""
    try:
        entries = os.listdir(spool)
    except FileNotFoundError:
        return False
    for entry in entries:
        if is_segment(entry) and entry < name:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(spool, entry))
    try:
        os.replace(os.path.join(spool, name), target)
    except FileNotFoundError:
        return False
    return True


def _start_prefetch(config: WalConfig, spool: str, name: str) -> None:
    """Fork a detached child that fetches the next ``config.prefetch`` segments into ``spool``."""
    os.makedirs(spool, mode=0o700, exist_ok=True)
    if os.fork() != 0:
        return
    try:  # the child: never returns to the caller
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        _prefetch(config, spool, name)
    finally:
        os._exit(0)


def _prefetch(config: WalConfig, spool: str, name: str) -> None:
    import fcntl

    with open(os.path.join(spool, ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # another prefetch is running; it will catch up
        timeline = int(name[:8], 16)
        number = segment_number(name)
        for step in range(1, config.prefetch + 1):
            following = segment_name(timeline, number + step)
            destination = os.path.join(spool, following)
            if os.path.exists(destination):
                continue
            try:
                _fetch_direct(config, following, destination)
            except Exception:  # not archived (yet), or any failure: the foreground fetch reports it
                return


def _fetch_direct(config: WalConfig, name: str, target: str) -> None:
    from backstream.runtime import run_async

    run_async(lambda: _fetch(config, name, target))


async def _push(config: WalConfig, source: str, name: str) -> bool:
    import anyio.to_thread
    from backstream.defaults import DEFAULT_CIPHER
    from backstream.jobs import CompressionSpec, KeyOptions, open_repository
    from backstream.jobs.objects import PluginCodecs
    from backstream.pipeline import Transform
    from backstream.plugins import Plugins
    from backstream.repository.objects import Digest, store_object
    from backstream.streams import file_source

    plugins = Plugins.load()
    keys = KeyOptions(cipher=config.cipher or DEFAULT_CIPHER, provider_options=config.provider_options)
    codecs = PluginCodecs(plugins, key_refs=config.encrypt, keys=keys)  # a passphrase's KDF starts now
    spec = CompressionSpec.parse(config.compress)
    factory = codecs.compressor(spec.name)
    await anyio.to_thread.run_sync(_wal_size, source)
    repository = await open_repository(plugins, config.repo, config.storage_options)
    storage = repository.storage
    record_path = sidecar_path(name)
    if await storage.exists(record_path):  # a retry: the same content is done, other content refused
        archived = WalRecord.from_json(await storage.read_bytes(record_path), f"{repository.url}/{record_path}")
        digest = await anyio.to_thread.run_sync(_file_sha256, source)
        if digest == archived.plaintext_sha256:
            return False
        raise _conflict(name, archived.plaintext_sha256, digest)
    plaintext = Digest()
    stored = await store_object(
        repository,
        object_path(name, factory.extension),
        file_source(source),
        name=name,
        codecs=codecs,
        codec=spec.name,
        codec_options=spec.options,
        context=wal_context(repository.repository_id, name, spec.name),
        taps=[Transform("sha256", plaintext)],
    )
    if stored.plaintext_size > MAX_WAL_FILE:
        await storage.delete(stored.path)
        raise ConfigError(f"{source} is larger than 1 GiB; not a WAL file")
    record = WalRecord(stored, plaintext.hexdigest(), time.time())
    await storage.write_bytes(record_path, record.to_json())  # the commit point
    return True


async def _fetch(config: WalConfig, name: str, target: str) -> None:
    from backstream import Plugins
    from backstream.jobs import KeyOptions, open_repository

    plugins = Plugins.load()
    repository = await open_repository(plugins, config.repo, config.storage_options)
    await fetch_archived(plugins, repository, name, target, KeyOptions(provider_options=config.provider_options))


async def fetch_archived(plugins: Plugins, repository: Repository, name: str, target: str, keys: KeyOptions) -> None:
    """Write archived WAL file ``name`` of ``repository``, checked and decoded, to ``target``
    (atomically); WalNotFound when it is not archived."""
    from backstream.jobs.objects import PluginCodecs
    from backstream.repository.objects import read_object
    from backstream.streams import file_sink

    storage = repository.storage
    record_path = sidecar_path(name)
    if not await storage.exists(record_path):
        raise WalNotFound(f"{name} is not in the WAL archive of {repository.url}")
    record = WalRecord.from_json(await storage.read_bytes(record_path), f"{repository.url}/{record_path}")
    await read_object(
        repository,
        record.object,
        file_sink(target, fsync=False),  # restore_command's file: PostgreSQL syncs what it replays
        codecs=PluginCodecs(plugins, keys=keys),
        context=wal_context(repository.repository_id, name, record.object.codec),
        plaintext_sha256=record.plaintext_sha256,
        described_by="WAL record",
    )
