"""The interfaces plugins implement: codecs, compressors, storage, sources, keys, checks, notifiers, commands.

These are structural (``typing.Protocol``): a plugin needs no base class, only the methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import argparse

ByteSource = AbstractAsyncContextManager[AsyncIterator[bytes]]
"""Entering yields the chunk iterator; a clean exit means the producer finished without error
(a dump tool's exit status is checked there)."""


@runtime_checkable
class BlockingChunks(Protocol):
    """A chunk iterator a source may yield instead of a plain one (it stays an async iterator):
    the pipeline then reads it with blocking calls in a worker thread of its own, so the data
    never passes through the event loop (a dump tool's stdout pipe, read directly).

    ``read_blocking(timeout)`` returns the next non-empty chunk of at most CHUNK_SIZE bytes, ``b""`` at
    the end, or None when nothing came within ``timeout`` seconds (so a cancelled run is noticed).
    """

    def read_blocking(self, timeout: float) -> bytes | None: ...

    def __aiter__(self) -> BlockingChunks: ...

    async def __anext__(self) -> bytes: ...


@runtime_checkable
class Codec(Protocol):
    """A sync, CPU-only push transform. It accepts any chunking of its input.

    ``update`` returns whatever output is ready (possibly ``b""``); ``finish`` flushes the rest
    and is called once. It does no I/O, so the core decides which thread runs it.
    """

    def update(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class ByteWriter(Protocol):
    """The write side of a sink: chunks go in order; the owning context commits on clean exit."""

    async def write(self, chunk: bytes) -> None: ...


ByteSink = AbstractAsyncContextManager[ByteWriter]
"""Entering opens the sink; a clean exit commits it, an exception discards everything written."""


class CompressorFactory(Protocol):
    """A compression format (``register_compressors``): makes push codecs in both directions."""

    name: str
    extension: str

    def compressor(self, options: Mapping[str, str]) -> Codec: ...

    def decompressor(self) -> Codec: ...


class Storage(Protocol):
    """One opened storage location (a repository root). Paths are relative, ``/``-separated."""

    url: str

    def open_write(self, path: str) -> ByteSink: ...

    def open_read(self, path: str) -> ByteSource: ...

    async def write_bytes(self, path: str, data: bytes) -> None: ...  # small objects, atomic

    async def read_bytes(self, path: str) -> bytes: ...  # small objects, whole

    async def exists(self, path: str) -> bool: ...

    async def size(self, path: str) -> int: ...

    async def list(self, prefix: str) -> list[str]: ...

    async def delete(self, path: str) -> None: ...


@runtime_checkable
class MultipartUploads(Protocol):
    """Optional on a ``Storage`` that can leave incomplete multipart uploads (S3): ``check`` lists
    them and ``cleanup`` aborts them. ``list_multipart_uploads`` returns (relative path, upload
    id, time initiated) for those below the location, or None where there are none to list."""

    async def list_multipart_uploads(self) -> list[tuple[str, str, datetime]] | None: ...

    async def abort_multipart_upload(self, path: str, upload_id: str) -> None: ...


@runtime_checkable
class EmptyFolders(Protocol):
    """Optional on a ``Storage`` with real folders (a local filesystem), where a process killed
    between making a folder and writing into it leaves the folder empty: ``check`` lists such
    folders and ``cleanup`` removes them. Object stores have no folders and do without it."""

    async def empty_folders(self, prefix: str) -> list[tuple[str, datetime]]:
        """The topmost folders below ``prefix`` that hold no object at any depth, as (relative
        path, newest modification time in the folder's tree)."""
        ...

    async def remove_empty_folder(self, path: str) -> None:
        """Remove the folder ``path`` and the empty folders in it; one that is no longer empty
        (a writer just put something there) is left as it is."""
        ...


@runtime_checkable
class ProcessLocal(Protocol):
    """Optional on a ``Storage`` that may keep its objects in the process's memory (fsspec's
    ``memory://``): fine for the Python API and tests, but the command line refuses to ``init``
    a repository there, as it would vanish when the command exits."""

    def process_local(self) -> bool:
        """True when this location's objects live only as long as this process."""
        ...


class StorageFactory(Protocol):
    """Storage for URL protocols (``register_storage``). ``"*"`` in ``protocols`` serves any protocol
    that no other storage plugin claims."""

    name: str
    protocols: frozenset[str]

    def open(self, url: str, options: Mapping[str, Any]) -> Storage: ...


@dataclass(frozen=True)
class Stanza:
    """One wrapped copy of a data key: the provider scheme, its key reference and its parameters.

    Limits of the v1 format (docs/format.md): ``scheme`` 1-64 chars of ``[a-z0-9-]``; ``key_ref``
    at most 2048 UTF-8 bytes; at most 32 ``params``, names of 1-32 chars of ``[a-z0-9_.-]``,
    values of at most 1024 UTF-8 bytes (binary goes in hex); ``wrapped_key`` 1-8192 bytes.
    """

    scheme: str
    key_ref: str
    params: Mapping[str, str] = field(default_factory=dict)
    wrapped_key: bytes = b""


class KeyProvider(Protocol):
    """Wraps and unwraps per-object data keys (``register_kms``, registered under its scheme).

    ``wrap`` returns a stanza whose ``scheme`` is the provider's and whose ``key_ref`` lets
    ``unwrap`` find the key again; ``context`` is the object's canonical context (bind it: KMS
    encryption context or AEAD associated data). ``unwrap`` raises KeyProviderError when the
    key does not open the stanza (wrong key, wrong context, no access).

    Optional members, looked up with ``getattr`` (docs/keys.md): ``exclusive: bool`` (a stanza
    of this scheme must be the only one of its object, as for passphrases);
    ``configure(options: Mapping[str, str]) -> KeyProvider`` (a copy using per-run options,
    unknown options ignored); ``async create_key(key_ref: str) -> str`` (create a key, return
    the reference to encrypt with); ``prepare(key_ref: str) -> None`` (begin the next wrap's
    slow work, e.g. a KDF, in the background; returns at once, never raises).
    """

    scheme: str

    async def wrap(self, data_key: bytes, *, key_ref: str, context: Mapping[str, str]) -> Stanza: ...

    async def unwrap(self, stanza: Stanza, *, context: Mapping[str, str]) -> bytes: ...


class Aead(Protocol):
    """One keyed AEAD (32-byte key, 12-byte nonce, 16-byte tag), used from worker threads.

    ``decrypt`` raises IntegrityError when the tag does not verify; ``data`` may be any
    bytes-like object (a memoryview slice), so callers need not copy.
    """

    def encrypt(self, nonce: bytes, data: bytes | bytearray | memoryview, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes | bytearray | memoryview, associated_data: bytes | None) -> bytes: ...


class CipherFactory(Protocol):
    """An AEAD cipher suite for the encrypted object format (``register_ciphers``).

    ``suite_id`` is the byte that names the suite in an object header (docs/format.md);
    the STREAM construction around it lives in ``backstream.crypto``.
    """

    name: str
    suite_id: int

    def aead(self, key: bytes) -> Aead: ...


@dataclass(frozen=True)
class JobContext:
    """What a source needs to know about the job that runs it.

    ``metadata`` is filled by the source during ``dump`` (server version, WAL LSN before/after,
    binlog file and position, ...) and ends up in the backup manifest; never put secrets in it.
    ``catalog_level`` is the verification catalog the backup records (``off``, ``quick``,
    ``standard``, ``comprehensive``); a source that can read per-table figures from its own
    stream (rows from ``standard``, content checksums at ``comprehensive``) offers a
    ``content_tap(job)`` codec that fills ``content`` with ``{table: {"rows": n, "checksum": s}}``,
    and the check plugin then takes those instead of reading the database again.
    """

    job_id: str
    options: Mapping[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    catalog_level: str = "off"
    content: dict[str, dict[str, Any]] = field(default_factory=dict)


class Source(Protocol):
    """A database or file that can be dumped to a stream and restored from one.

    ``dump`` yields the dump as chunks; its context exits cleanly only if the dump tool or driver
    finished successfully (exit status checked after EOF). ``restore`` consumes ``data`` to the
    end before it commits anything: the iterator raises (e.g. IntegrityError) on bad data, and
    then the target must be left exactly as it was.
    """

    def dump(self, job: JobContext) -> ByteSource: ...

    async def restore(self, data: AsyncIterator[bytes], job: JobContext) -> None: ...


class ContentTap(Protocol):
    """Optional on a ``Source``: a pass-through codec placed first in the backup pipeline that
    watches the dump's plaintext and fills ``job.content`` when it finishes (None: nothing to do)."""

    def content_tap(self, job: JobContext) -> Codec | None: ...


class SourceFactory(Protocol):
    """Sources for URL schemes (``register_sources``), e.g. ``sqlite``, ``postgresql``."""

    name: str
    schemes: frozenset[str]

    def open(self, url: str, options: Mapping[str, str]) -> Source: ...


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one verification check."""

    name: str
    status: str  # "pass" | "fail" | "skip"
    detail: str = ""


class Check(Protocol):
    """One engine's verification checks (``register_checks``), registered under the name of the
    source plugin whose backups it verifies (``sqlite``, ``postgresql``, ``mysql``).

    ``inspect`` describes a database at a level (``quick``: table names; ``standard``: + row
    counts and columns; ``comprehensive``: + indexes, constraints, per-table content checksums
    for tables of at most ``max_rows`` rows) as JSON-able data, the same way at backup time and
    after a restore, so the core can compare the two (docs/verification.md has the shape).
    ``content`` (backup time only, when the source's content tap ran) holds per-table rows and
    checksums read from the dump itself, to be used instead of querying them.
    ``integrity`` runs the engine's own consistency check. ``scratch`` yields the URL of a new,
    empty restore target on the server of ``server_url`` and removes it on exit.
    """

    name: str

    async def inspect(
        self, url: str, *, level: str, max_rows: int | None = None, content: Mapping[str, Any] | None = None
    ) -> dict[str, Any]: ...

    async def integrity(self, url: str) -> list[CheckResult]: ...

    def scratch(self, server_url: str) -> AbstractAsyncContextManager[str]: ...


class Notifier(Protocol):
    """Sends job events somewhere (``register_notifiers``)."""

    name: str

    async def notify(self, event: object) -> None: ...


@runtime_checkable
class Command(Protocol):
    """A ``backstream`` subcommand a plugin adds (``register_commands``), registered under the word a
    user types (``wal-push``). ``configure`` adds its arguments to its own subparser (cheaply: import
    heavy modules in ``run``, not at the top of the command's module); ``run`` does the work and
    returns the exit status. A ``BackstreamError`` it raises is printed as one line, like any command's.
    """

    help: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


@runtime_checkable
class CommandOptions(Protocol):
    """Options a plugin adds to a command it does not own (``register_commands``, under a name of its
    own such as ``restore:postgresql``). ``extends`` names the command (``restore``); ``configure``
    adds the options to that command's parser; ``check`` runs before the command does and raises
    ``ConfigError`` for a combination the options do not allow. The command passes the values on as
    it documents: ``restore`` hands every option to the restore path of the backup's kind
    (``RestoreRequest.extra``), ``backup`` reads a ``source_plugin`` destination (a source chosen by
    name, as ``--physical`` does).
    """

    extends: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def check(self, args: argparse.Namespace) -> None: ...
