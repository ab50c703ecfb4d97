"""The WAL archive: ``push`` (archive_command) and ``fetch`` (restore_command) of PostgreSQL WAL files.

Each file is stored compressed (and encrypted when keys are configured) at ``wal/<tl>/<name><ext>``;
a small JSON record ``wal/<tl>/<name>.json`` written after it is the commit point and holds the
plaintext sha256 that makes a retried push of identical content a no-op. A local repository
without encryption takes a fast path that needs neither the plugin manager nor fsspec.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backstream import ConfigError, IntegrityError, RepositoryError, StorageError

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
    """What the archive knows about one WAL file."""

    name: str
    path: str
    plaintext_size: int
    plaintext_sha256: str
    stored_size: int
    stored_sha256: str
    codec: str
    cipher: str | None
    key_refs: tuple[str, ...]
    archived_at: float

    def to_json(self) -> bytes:
        document = {"format": RECORD_FORMAT, "version": 1, **self.__dict__, "key_refs": list(self.key_refs)}
        return (json.dumps(document, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> WalRecord:
        try:
            doc: dict[str, Any] = json.loads(data)
            if doc.get("format") != RECORD_FORMAT:
                raise ValueError("not a backstream WAL record")
            return cls(
                name=str(doc["name"]),
                path=str(doc["path"]),
                plaintext_size=int(doc["plaintext_size"]),
                plaintext_sha256=str(doc["plaintext_sha256"]),
                stored_size=int(doc["stored_size"]),
                stored_sha256=str(doc["stored_sha256"]),
                codec=str(doc["codec"]),
                cipher=None if doc.get("cipher") is None else str(doc["cipher"]),
                key_refs=tuple(str(k) for k in doc.get("key_refs") or ()),
                archived_at=float(doc.get("archived_at") or 0.0),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise RepositoryError(f"{where} is not a valid WAL record: {exc}") from exc


def wal_context(repository_id: str, name: str, codec: str) -> dict[str, str]:
    """The context bound into an encrypted WAL object's header."""
    return {"kind": "wal", "repository_id": repository_id, "object": name, "codec": codec}


# --- local fast path ---------------------------------------------------------------------------


def _local_root(url: str) -> str | None:
    if url.startswith("file://"):
        return url[len("file://") :] or "/"
    if "://" in url:
        return None
    return os.path.abspath(url)


def _codec(spec: str) -> tuple[str, int]:
    name, _, level = spec.strip().partition(":")
    name = name.lower() or "none"
    if name not in ("zstd", "none"):
        return name, -1
    try:
        return name, int(level.removeprefix("level=")) if level else 3
    except ValueError:
        return name, -1


def _fast_ok(config: WalConfig) -> str | None:
    """The local root directory when the fast path applies (local repo, zstd/none, no encryption)."""
    root = _local_root(config.repo)
    if root is None or config.encrypt or config.storage_options or _codec(config.compress)[1] < 0:
        return None
    return root


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_WAL_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read WAL file {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_WAL_FILE:
        raise ConfigError(f"{path} is larger than 1 GiB; not a WAL file")
    return data


def _atomic_write(target: str, data: bytes, *, fsync: bool = True) -> None:
    """Write ``target`` whole or not at all; a failure (permissions, a full disk) is one StorageError line."""
    directory = os.path.dirname(target)
    temporary = f"{directory}/.{os.path.basename(target)}.{os.getpid()}.partial"
    try:
        os.makedirs(directory, exist_ok=True)
        with open(temporary, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc
        raise


def _check_repo(root: str, url: str) -> None:
    if not os.path.isfile(os.path.join(root, "backstream.json")):
        raise RepositoryError(
            f"{url} is not a backstream repository (no backstream.json); create it with backstream init"
        )


def _existing(record_bytes: bytes | None, where: str, name: str, sha: str) -> bool:
    """True when ``name`` is already archived with this content; a different content is a WalConflict."""
    if record_bytes is None:
        return False
    record = WalRecord.from_json(record_bytes, where)
    if record.plaintext_sha256 == sha:
        return True
    raise WalConflict(
        f"{name} is already archived with different content (sha256 {record.plaintext_sha256[:16]}..., "
        f"new {sha[:16]}...); refusing to overwrite it — is a second cluster archiving into this repository?"
    )


def _push_local(root: str, config: WalConfig, source: str, name: str) -> bool:
    _check_repo(root, config.repo)
    data = _read_file(source)
    sha = hashlib.sha256(data).hexdigest()
    record_file = os.path.join(root, sidecar_path(name))
    try:
        with open(record_file, "rb") as handle:
            existing: bytes | None = handle.read()
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise StorageError(f"cannot read {record_file}: {exc.strerror or exc}") from exc
    if _existing(existing, record_file, name, sha):
        return False
    codec, level = _codec(config.compress)
    if codec == "zstd":
        import zstandard

        stored = zstandard.ZstdCompressor(level=level).compress(data)
        extension = ".zst"
    else:
        stored, extension = data, ""
    path = object_path(name, extension)
    _atomic_write(os.path.join(root, path), stored)
    record = WalRecord(
        name=name,
        path=path,
        plaintext_size=len(data),
        plaintext_sha256=sha,
        stored_size=len(stored),
        stored_sha256=hashlib.sha256(stored).hexdigest(),
        codec=codec,
        cipher=None,
        key_refs=(),
        archived_at=time.time(),
    )
    _atomic_write(record_file, record.to_json())
    return True


def _fetch_local(root: str, config: WalConfig, name: str, target: str) -> bool:
    """Fetch without plugins when the stored object is plain zstd/none; False = use the general path."""
    record_file = os.path.join(root, sidecar_path(name))
    try:
        with open(record_file, "rb") as handle:
            record = WalRecord.from_json(handle.read(), record_file)
    except FileNotFoundError:
        _check_repo(root, config.repo)
        raise WalNotFound(f"{name} is not in the WAL archive of {config.repo}") from None
    except OSError as exc:
        raise StorageError(f"cannot read {record_file}: {exc.strerror or exc}") from exc
    if record.cipher or record.codec not in ("zstd", "none"):
        return False
    stored = _read_file(os.path.join(root, record.path))
    if len(stored) != record.stored_size or hashlib.sha256(stored).hexdigest() != record.stored_sha256:
        raise IntegrityError(f"archived {record.path} does not match its record (size or sha256): it is corrupted")
    if record.codec == "zstd":
        import zstandard

        data = zstandard.ZstdDecompressor().decompress(stored, max_output_size=record.plaintext_size)
    else:
        data = stored
    _check_plaintext(record, data)
    _atomic_write(target, data, fsync=False)
    return True


def _check_plaintext(record: WalRecord, data: bytes) -> None:
    if len(data) != record.plaintext_size or hashlib.sha256(data).hexdigest() != record.plaintext_sha256:
        raise IntegrityError(f"{record.name} decoded to different bytes than were archived: the archive is corrupted")


# --- public entry points ---------------------------------------------------------------------


def push(config: WalConfig, source: str, *, name: str | None = None) -> bool:
    """Archive the WAL file at ``source``; True if stored, False if the identical file was already there."""
    name = check_wal_name(name or os.path.basename(source))
    root = _fast_ok(config)
    if root is not None:
        return _push_local(root, config, source, name)
    from backstream.runtime import run_async

    return run_async(lambda: _push_general(config, source, name))


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
    root = _local_root(config.repo)
    if root is not None and not config.storage_options and _fetch_local(root, config, name, target):
        return
    from backstream.runtime import run_async

    run_async(lambda: _fetch_general(config, name, target))


async def _push_general(config: WalConfig, source: str, name: str) -> bool:
    import anyio.to_thread
    from backstream.defaults import DEFAULT_CIPHER
    from backstream.jobs.common import CompressionSpec, open_repository
    from backstream.jobs.encryption import KeyOptions, encrypting_transform, prepared_providers
    from backstream.pipeline import Pipeline, Transform
    from backstream.plugins import Plugins
    from backstream.streams import iterable_source

    plugins = Plugins.load()
    keys = KeyOptions(cipher=config.cipher or DEFAULT_CIPHER, provider_options=config.provider_options)
    providers = prepared_providers(plugins, config.encrypt, keys) if config.encrypt else None  # KDF starts now
    data = await anyio.to_thread.run_sync(_read_file, source)
    sha = hashlib.sha256(data).hexdigest()
    repository = await open_repository(plugins, config.repo, config.storage_options)
    storage = repository.storage
    record_path = sidecar_path(name)
    existing = await storage.read_bytes(record_path) if await storage.exists(record_path) else None
    if _existing(existing, f"{repository.url}/{record_path}", name, sha):
        return False
    spec = CompressionSpec.parse(config.compress)
    factory = plugins.compressors().get(spec.name)
    transforms = [Transform(f"compress:{spec.name}", factory.compressor(spec.options))]
    cipher: str | None = None
    if config.encrypt:
        context = wal_context(repository.repository_id, name, spec.name)
        stage, cipher = await encrypting_transform(
            plugins, config.encrypt, context, keys=keys, object_name=name, providers=providers
        )
        transforms.append(stage)
    path = object_path(name, factory.extension)
    pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    result = await Pipeline(iterable_source(pieces), transforms, storage.open_write(path)).run()
    record = WalRecord(
        name=name,
        path=path,
        plaintext_size=len(data),
        plaintext_sha256=sha,
        stored_size=result.bytes_out,
        stored_sha256=result.sha256,
        codec=spec.name,
        cipher=cipher,
        key_refs=config.encrypt if cipher else (),
        archived_at=time.time(),
    )
    await storage.write_bytes(record_path, record.to_json())
    return True


async def _fetch_general(config: WalConfig, name: str, target: str) -> None:
    from backstream import Plugins
    from backstream.jobs import KeyOptions, open_repository

    plugins = Plugins.load()
    repository = await open_repository(plugins, config.repo, config.storage_options)
    await fetch_archived(plugins, repository, name, target, KeyOptions(provider_options=config.provider_options))


async def fetch_archived(plugins: Plugins, repository: Repository, name: str, target: str, keys: KeyOptions) -> None:
    """Write archived WAL file ``name`` of ``repository``, checked and decoded, to ``target``
    (atomically); WalNotFound when it is not archived."""
    import anyio.to_thread
    from backstream import MemoryWriter, Pipeline, Transform, iterable_source, memory_sink
    from backstream.jobs import verified
    from backstream.jobs.encryption import open_decrypting
    from backstream.repository import ObjectRecord

    storage = repository.storage
    record_path = sidecar_path(name)
    if not await storage.exists(record_path):
        raise WalNotFound(f"{name} is not in the WAL archive of {repository.url}")
    record = WalRecord.from_json(await storage.read_bytes(record_path), f"{repository.url}/{record_path}")
    as_object = ObjectRecord.archived(record)
    writer = MemoryWriter()
    async with verified(storage.open_read(record.path), as_object) as stored:
        transforms: list[Transform] = []
        if record.cipher:
            context = wal_context(repository.repository_id, name, record.codec)
            decrypt, stored = await open_decrypting(plugins, stored, context, keys=keys, object_name=name)
            transforms.append(decrypt)
        codec = plugins.compressors().get(record.codec).decompressor()
        transforms.append(Transform(f"decompress:{record.codec}", codec))
        await Pipeline(iterable_source(stored), transforms, memory_sink(writer)).run()
    data = writer.data or b""
    _check_plaintext(record, data)
    await anyio.to_thread.run_sync(lambda: _atomic_write(target, data, fsync=False))
