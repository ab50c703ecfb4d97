"""The ``fsspec`` storage: every fsspec protocol (file, memory, s3 through s3fs, ...) as a backstream sink.

Writes are atomic: an object appears at its final path only when its writing block exits cleanly.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import posixpath
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any, BinaryIO, Protocol, TypeVar

import anyio
import anyio.to_thread
from backstream import (
    CHUNK_SIZE,
    ByteWriter,
    ConfigError,
    MissingDependencyError,
    Register,
    Storage,
    StorageError,
    hookimpl,
    missing_dependency,
    split,
)

T = TypeVar("T")

WRITE_BATCH = 4 * CHUNK_SIZE
"""Bytes gathered before one blocking write in a worker thread (256 KiB)."""

READ_SIZE = 16 * CHUNK_SIZE
"""Bytes read per blocking call (1 MiB), handed on in chunks of at most CHUNK_SIZE."""

WRITEBACK_BYTES = 8 * 2**20
"""A local upload asks the kernel to write back (and drop from the page cache) every this many bytes."""

PART_SIZE = 8 * 2**20
"""Default S3 multipart part size; it doubles every PART_GROWTH_EVERY parts (S3 allows 10,000 parts),
so an upload holds about 3 parts in memory and objects can grow to terabytes."""

PART_GROWTH_EVERY = 1000
S3_MIN_PART = 5 * 2**20
S3_MAX_PART = 5 * 2**30

S3_READ_BLOCK = 8 * 2**20
"""Bytes one S3 GET fetches ahead while reading."""

S3_CONFIG = {"connect_timeout": 10, "read_timeout": 60, "retries": {"max_attempts": 3, "mode": "standard"}}
"""botocore settings used unless ``config_kwargs`` overrides them: fail within seconds, not minutes."""

DISCARD_TIMEOUT = 60.0
"""Seconds a failed write may spend removing its temporary data before giving up."""

TEMP_SUFFIX = ".partial"
"""Temporary objects are named ``.<name>.<12 hex digits>.partial`` beside their final path."""

S3_PROTOCOLS = frozenset({"s3", "s3a"})

_DRIVER_MODULES = frozenset(
    {
        "fsspec",
        "s3fs",
        "botocore",
        "aiobotocore",
        "aiohttp",
        "urllib3",
        "requests",
        "gcsfs",
        "google",
        "adlfs",
        "azure",
        "ftplib",
        "paramiko",
    }
)
"""Top-level modules whose exceptions are storage failures (translated), not programming errors."""


# --- uploads: blocking, each method runs in a worker thread -------------------------------------


class _Upload(Protocol):
    def write(self, data: bytes) -> None: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


class _LocalUpload:
    """A temporary file beside the target, fsynced and renamed over it on commit."""

    def __init__(self, target: str, prune: Callable[[str], None]) -> None:
        self._target = target
        self._prune = prune  # removes the folders made for the target if they are left empty
        self._unsynced = 0
        self._advise = hasattr(os, "posix_fadvise")
        directory, name = os.path.split(target)
        self._temporary = os.path.join(directory, _temp_name(name))
        os.makedirs(directory, exist_ok=True)
        try:
            self._handle: BinaryIO = open(self._temporary, "xb")  # closed by commit() or discard()
        except FileNotFoundError:  # a delete just removed the (then empty) directory: make it again
            os.makedirs(directory, exist_ok=True)
            self._handle = open(self._temporary, "xb")

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self._unsynced += len(data)
        if self._unsynced >= WRITEBACK_BYTES and self._advise:
            # Start writing back what is written so far (and let the kernel drop what is already
            # on disk): commit's fsync then waits for the tail only, and a backup does not push
            # the database's own pages out of the page cache. Only advice: a refusal is ignored.
            self._handle.flush()
            try:
                os.posix_fadvise(self._handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                self._advise = False
            self._unsynced = 0

    def commit(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self._temporary, self._target)
        directory = os.open(os.path.dirname(self._target), os.O_RDONLY)
        try:
            os.fsync(directory)  # make the rename itself durable
        finally:
            os.close(directory)

    def discard(self) -> None:
        try:
            self._handle.close()
        finally:
            try:
                os.unlink(self._temporary)
            except FileNotFoundError:
                pass
            self._prune(os.path.dirname(self._target))  # a cancelled backup leaves no empty data/ folder


class _S3Upload:
    """An s3fs file with ``autocommit=False``: a multipart upload completed on commit, aborted on discard."""

    def __init__(self, fs: Any, path: str, part_size: int) -> None:
        self._fs = fs
        self._part_size = part_size
        self._handle = fs.open(path, "wb", autocommit=False, block_size=part_size)

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        if not getattr(self._fs, "fixed_upload_size", False):
            # Grow the parts so that 10,000 of them reach far beyond 160 GB.
            self._handle.blocksize = self._part_size * 2 ** (len(self._handle.parts or ()) // PART_GROWTH_EVERY)

    def commit(self) -> None:
        try:
            self._handle.close()  # uploads the last part; nothing is visible yet
            self._handle.commit()  # CompleteMultipartUpload: the object appears whole
        finally:
            self._forget()

    def discard(self) -> None:
        try:
            self._handle.discard()  # AbortMultipartUpload
        finally:
            self._handle.closed = True  # never let close() (or __del__) flush a half object
            self._forget()

    def _forget(self) -> None:
        # fsspec keeps every autocommit=False file in fs.transaction.files; drop ours.
        try:
            self._fs.transaction.files.remove(self._handle)
        except ValueError:
            pass


class _RenameUpload:
    """Any other filesystem: write a temporary object beside the target and move it into place."""

    def __init__(self, fs: Any, path: str) -> None:
        self._fs = fs
        self._path = path
        parent, name = posixpath.split(path)
        self._temporary = posixpath.join(parent, _temp_name(name))
        if parent:
            fs.makedirs(parent, exist_ok=True)
        self._handle = fs.open(self._temporary, "wb")

    def write(self, data: bytes) -> None:
        self._handle.write(data)

    def commit(self) -> None:
        self._handle.close()
        self._fs.mv(self._temporary, self._path)

    def discard(self) -> None:
        try:
            self._handle.close()
        finally:
            if self._fs.exists(self._temporary):
                self._fs.rm_file(self._temporary)


def _temp_name(name: str) -> str:
    return f".{name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}"


# --- the storage ---------------------------------------------------------------------------------


class _Writer:
    """Gathers chunks into batches of at least WRITE_BATCH bytes before a blocking write."""

    def __init__(self, flush: Callable[[bytes], Any]) -> None:
        self._flush = flush
        self._pending: list[bytes] = []
        self._size = 0

    async def write(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._pending.append(chunk)
        self._size += len(chunk)
        if self._size >= WRITE_BATCH:
            await self.flush()

    async def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._size = 0
            await self._flush(data)


class FsspecStorage:
    """One storage location (a repository root) on an fsspec filesystem."""

    def __init__(self, url: str, fs: Any, root: str, *, part_size: int = PART_SIZE) -> None:
        self.url = url if url.endswith("://") else url.rstrip("/")
        self._fs = fs
        self._root = root.rstrip("/")
        self._part_size = part_size
        self._shown_url = _without_password(self.url)
        self._kind = _kind(fs)

    def __repr__(self) -> str:
        return f"FsspecStorage({self.url!r})"

    # --- writing -----------------------------------------------------------------------------

    @asynccontextmanager
    async def open_write(self, path: str) -> AsyncIterator[ByteWriter]:
        """Stream an object to ``path``; it appears there only when the block exits cleanly."""
        full = self._full(path)
        upload = await self._call("write", path, self._new_upload, full)

        async def flush(data: bytes) -> None:
            await self._call("write", path, upload.write, data)

        writer = _Writer(flush)
        committed = False
        try:
            yield writer
            await writer.flush()
            await self._call("write", path, upload.commit)
            committed = True
        finally:
            if not committed:
                await _discard_quietly(upload)

    async def write_bytes(self, path: str, data: bytes) -> None:
        """Store a small object atomically in one call (a single PUT on S3)."""
        full = self._full(path)
        await self._call("write", path, self._write_whole, full, data)

    def _new_upload(self, full: str) -> _Upload:
        if self._kind == "local":
            return _LocalUpload(full, self._prune_empty_dirs)
        if self._kind == "s3":
            return _S3Upload(self._fs, full, self._part_size)
        return _RenameUpload(self._fs, full)

    def _write_whole(self, full: str, data: bytes) -> None:
        if self._kind == "s3":
            self._fs.pipe_file(full, data)  # PutObject is atomic on its own
            return
        upload = self._new_upload(full)
        try:
            upload.write(data)
            upload.commit()
        except BaseException:
            try:
                upload.discard()
            except Exception:
                pass
            raise

    # --- reading -----------------------------------------------------------------------------

    @asynccontextmanager
    async def open_read(self, path: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """Stream the object at ``path`` in chunks of at most CHUNK_SIZE bytes."""
        full = self._full(path)
        handle = await self._call("read", path, self._open_reader, full)

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                data: bytes = await self._call("read", path, handle.read, READ_SIZE)
                if not data:
                    return
                for piece in split(data):
                    yield piece

        try:
            yield chunks()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_close_quietly, handle)

    async def read_bytes(self, path: str) -> bytes:
        """The whole content of a small object (a manifest, a config file)."""
        return await self._call("read", path, self._fs.cat_file, self._full(path))

    def _open_reader(self, full: str) -> Any:
        if self._kind == "s3":
            return self._fs.open(full, "rb", block_size=S3_READ_BLOCK, cache_type="readahead")
        if self._kind == "memory":
            # fsspec memory files are shared handles (one position for every reader): read a copy.
            return io.BytesIO(self._fs.cat_file(full))
        return self._fs.open(full, "rb")

    # --- metadata ----------------------------------------------------------------------------

    async def exists(self, path: str) -> bool:
        """True when an object (not a directory) is stored at ``path``."""
        return await self._call("check", path, self._is_object, self._full(path))

    async def size(self, path: str) -> int:
        """The stored size of the object at ``path`` in bytes."""
        return await self._call("stat", path, self._object_size, self._full(path))

    async def list(self, prefix: str = "") -> list[str]:
        """Every object at or below the directory ``prefix`` ("" = all), as sorted relative paths."""
        prefix = prefix.strip("/")
        base = self._full(prefix) if prefix else self._root or "/"
        found: list[str] = await self._call("list", prefix, self._find, base)
        strip = len(self._root) + 1
        return sorted(name[strip:] for name in found)

    async def delete(self, path: str) -> None:
        """Remove the object at ``path``; an object that is already gone is not an error."""
        await self._call("delete", path, self._remove, self._full(path))

    def process_local(self) -> bool:
        """True for ``memory://``: the objects live in this process only."""
        return self._kind == "memory"

    async def empty_folders(self, prefix: str) -> list[tuple[str, datetime]]:
        """The topmost folders below ``prefix`` with no object in them at any depth (local only:
        other filesystems have no folders to leave behind), with the newest mtime in each."""
        if self._kind != "local":
            return []
        return await self._call("list the folders of", prefix, self._empty_folders, self._full(prefix.strip("/")))

    async def remove_empty_folder(self, path: str) -> None:
        """Remove the empty folder ``path`` (and empty folders in it); a folder that is not empty stays."""
        if self._kind == "local":
            await self._call("remove the folder", path, self._remove_folder, self._full(path.strip("/")))

    def _empty_folders(self, base: str) -> builtins.list[tuple[str, datetime]]:
        empty: dict[str, float] = {}  # folder -> newest mtime in its tree, for folders without objects
        for directory, dirnames, filenames in os.walk(base, topdown=False):
            if filenames or any(os.path.join(directory, d) not in empty for d in dirnames):
                continue
            newest = max([os.stat(directory).st_mtime, *(empty[os.path.join(directory, d)] for d in dirnames)])
            empty[directory] = newest
        strip = len(self._root) + 1
        return [
            (folder[strip:] + "/", datetime.fromtimestamp(mtime).astimezone())
            for folder, mtime in sorted(empty.items())
            if folder != base and os.path.dirname(folder) not in empty
        ]

    def _remove_folder(self, full: str) -> None:
        for directory, _, _ in os.walk(full, topdown=False):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError:  # something was written meanwhile: leave it
                return
        self._prune_empty_dirs(posixpath.dirname(full))

    async def list_multipart_uploads(self) -> list[tuple[str, str, datetime]] | None:
        """Incomplete S3 multipart uploads below this location, as (relative path, upload id, time
        initiated); None on filesystems that have no such thing."""
        if self._kind != "s3":
            return None
        return await self._call("list multipart uploads of", "", self._multipart_uploads)

    async def abort_multipart_upload(self, path: str, upload_id: str) -> None:
        """Abort one incomplete multipart upload (its parts are deleted; nothing else is touched)."""
        bucket, key = self._bucket_key(self._full(path))
        await self._call(
            "abort a multipart upload of",
            path,
            partial(self._fs.call_s3, "abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id),
        )

    def _multipart_uploads(self) -> list[tuple[str, str, datetime]]:
        bucket, prefix = self._bucket_key(self._root)
        prefix = prefix + "/" if prefix else ""
        found = []
        marker: dict[str, str] = {}
        while True:
            page = self._fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix, **marker)
            for upload in page.get("Uploads", []):
                found.append((upload["Key"][len(prefix) :], upload["UploadId"], upload["Initiated"]))
            if not page.get("IsTruncated"):
                return found
            marker = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}

    @staticmethod
    def _bucket_key(full: str) -> tuple[str, str]:
        bucket, _, key = full.partition("/")
        return bucket, key

    def _info(self, full: str) -> dict[str, Any] | None:
        self._fs.invalidate_cache(full)
        try:
            info: dict[str, Any] = self._fs.info(full)
        except FileNotFoundError:
            return None
        return info if info.get("type") == "file" else None

    def _is_object(self, full: str) -> bool:
        return self._info(full) is not None

    def _object_size(self, full: str) -> int:
        info = self._info(full)
        if info is None:
            raise FileNotFoundError(errno.ENOENT, "not found", full)
        return int(info["size"])

    def _find(self, base: str) -> builtins.list[str]:
        self._fs.invalidate_cache(base)
        return builtins.list(self._fs.find(base))

    def _remove(self, full: str) -> None:
        try:
            self._fs.rm_file(full)
        except FileNotFoundError:
            pass
        if self._kind == "local":
            self._prune_empty_dirs(posixpath.dirname(full))

    def _prune_empty_dirs(self, directory: str) -> None:
        """Remove ``directory`` and its parents while they are empty, but never a top-level
        directory of the location (``backups``, ``locks``, ...): object stores have no
        directories, and a local repository would otherwise keep every deleted backup's empty
        folders. A writer that loses its just-made directory this way makes it again."""
        top = self._root.count("/") + 1
        while directory.startswith(self._root + "/") and directory.count("/") > top:
            try:
                os.rmdir(directory)
            except OSError:  # not empty (or already gone): stop here
                return
            directory = posixpath.dirname(directory)

    # --- helpers -----------------------------------------------------------------------------

    def _full(self, path: str) -> str:
        parts = path.split("/")
        if not path or path.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise ConfigError(f"invalid storage path {path!r}: use a relative path like 'backups/id/data'")
        return f"{self._root}/{path}"

    async def _call(self, action: str, path: str, func: Callable[..., T], *args: Any) -> T:
        """Run a blocking filesystem call in a worker thread; driver errors become StorageError."""
        try:
            return await anyio.to_thread.run_sync(func, *args)
        except TypeError as exc:
            if "unexpected keyword argument" in str(exc):  # s3fs passes unknown options on to its session
                raise ConfigError(f"bad storage options for {self._shown_url}: {exc}") from exc
            raise
        except Exception as exc:
            error = _translate(exc, action, f"{self._shown_url}/{path}" if path else self._shown_url)
            if error is None:
                raise
            raise error from exc


def _kind(fs: Any) -> str:
    """How writes commit on ``fs``: "local", "s3", "memory" or "other" (see the upload classes)."""
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if "file" in protocols:
        return "local"
    if protocols & S3_PROTOCOLS:
        return "s3"
    if "memory" in protocols:
        return "memory"
    return "other"


async def _discard_quietly(upload: _Upload) -> None:
    """Throw away an unfinished upload, even while the surrounding task is being cancelled."""
    with anyio.move_on_after(DISCARD_TIMEOUT, shield=True):
        try:
            await anyio.to_thread.run_sync(upload.discard, abandon_on_cancel=True)
        except Exception:
            pass  # the write already failed; its error is the one to report


def _close_quietly(handle: Any) -> None:
    try:
        handle.close()
    except Exception:
        pass


def _translate(exc: Exception, action: str, where: str) -> StorageError | None:
    """One clear line for a driver error; None for errors that are bugs, not storage failures."""
    if isinstance(exc, StorageError):
        return exc
    if not isinstance(exc, OSError) and type(exc).__module__.split(".")[0] not in _DRIVER_MODULES:
        return None
    detail = _detail(exc)
    if isinstance(exc, FileNotFoundError):
        # Keep a driver's explanation ("The specified bucket does not exist"), not a bare path or strerror.
        explained = " " in detail and detail != "not found" and exc.strerror is None
        return StorageError(f"cannot {action} {where}: not found" + (f" ({detail})" if explained else ""))
    if isinstance(exc, PermissionError):
        return StorageError(f"cannot {action} {where}: permission denied ({detail})")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return StorageError(f"cannot {action} {where}: no space left on device")
    return StorageError(f"cannot {action} {where}: {detail}")


def _without_password(url: str) -> str:
    """``proto://user:secret@host/...`` as ``proto://user@host/...``, for error messages."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    if not sep or "@" not in netloc:
        return url
    userinfo, host = netloc.rsplit("@", 1)
    return f"{scheme}://{userinfo.split(':', 1)[0]}@{host}{slash}{path}"


def _detail(exc: BaseException) -> str:
    text = (exc.strerror if isinstance(exc, OSError) and exc.strerror else None) or str(exc) or type(exc).__name__
    return " ".join(text.split())


# --- the factory and its registration ------------------------------------------------------------


class FsspecStorageFactory:
    """Opens URLs of the given protocols with fsspec; ``"*"`` serves any protocol fsspec knows."""

    def __init__(self, name: str, protocols: frozenset[str]) -> None:
        self.name = name
        self.protocols = protocols

    def open(self, url: str, options: Mapping[str, Any]) -> Storage:
        """Open ``url``. ``part_size`` (bytes) is ours; every other option goes to the fsspec
        filesystem (e.g. ``endpoint_url``, ``key``, ``secret``, ``client_kwargs`` for s3fs)."""
        import fsspec.core

        storage_options = dict(options)
        part_size = _part_size(storage_options.pop("part_size", PART_SIZE))
        protocol = url.split("://", 1)[0].split("::")[-1] if "://" in url else "file"
        if protocol in S3_PROTOCOLS:
            config = dict(S3_CONFIG)
            config.update(storage_options.get("config_kwargs") or {})
            storage_options["config_kwargs"] = config
        try:
            fs, root = fsspec.core.url_to_fs(url, **storage_options)
        except ImportError as exc:
            if protocol in S3_PROTOCOLS:
                raise missing_dependency("s3fs", "s3") from exc
            raise MissingDependencyError(f"{protocol}:// URLs need a driver that is not installed: {exc}") from exc
        except ValueError as exc:
            raise ConfigError(f"cannot open storage {_without_password(url)}: {exc}") from exc
        except TypeError as exc:
            raise ConfigError(f"bad storage options for {_without_password(url)}: {exc}") from exc
        except Exception as exc:  # filesystems that connect at once (ftp, sftp) fail here
            error = _translate(exc, "open", _without_password(url))
            if error is None:
                raise
            raise error from exc
        if protocol in S3_PROTOCOLS and not root.strip("/"):
            raise ConfigError(f"storage URL {url} names no bucket: use s3://<bucket>[/<prefix>]")
        return FsspecStorage(url, fs, root, part_size=part_size)


def _part_size(raw: object) -> int:
    try:
        value = int(str(raw))
    except ValueError:
        raise ConfigError(f"part_size must be a number of bytes, not {raw!r}") from None
    if not S3_MIN_PART <= value <= S3_MAX_PART:
        raise ConfigError(f"part_size must be between {S3_MIN_PART} and {S3_MAX_PART} bytes (S3 limits), not {value}")
    return value


@hookimpl
def backstream_register_storage(register: Register[Any]) -> None:
    register.add("fsspec", FsspecStorageFactory("fsspec", frozenset({"*"})))
    register.add("fsspec-s3", FsspecStorageFactory("fsspec-s3", S3_PROTOCOLS), requires=("s3fs",), extra="s3")
