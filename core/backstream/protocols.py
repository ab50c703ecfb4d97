"""The interfaces plugins implement: codecs, compressors, storage, sources (and their restore paths
and drills), keys, checks, notifiers, log archives, commands.

These are structural (``typing.Protocol``): a plugin needs no base class, only the methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import argparse

    from backstream.jobs.encryption import KeyOptions
    from backstream.notify import Notification
    from backstream.plugins import Plugins
    from backstream.repository import Manifest, Repository
    from backstream.repository.check import ArchivedFile, Problem
    from backstream.retention import ArchiveDecision

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

    Optional capabilities, each a protocol below checked with ``isinstance`` (docs/keys.md):
    ``ExclusiveKeys``, ``ConfigurableKeys``, ``PreparedKeys``, ``CreatesKeys``, ``ExportsPublicKeys``.
    """

    scheme: str

    async def wrap(self, data_key: bytes, *, key_ref: str, context: Mapping[str, str]) -> Stanza: ...

    async def unwrap(self, stanza: Stanza, *, context: Mapping[str, str]) -> bytes: ...


@runtime_checkable
class ExclusiveKeys(Protocol):
    """Optional on a ``KeyProvider``: ``exclusive`` True means a stanza of this scheme must be the
    only one of its object (passphrases: one more key would make the passphrase pointless)."""

    exclusive: bool


@runtime_checkable
class ConfigurableKeys(Protocol):
    """Optional on a ``KeyProvider``: a copy that uses per-run options (``-o key=value`` of the key
    options; unknown options ignored). Jobs always work on such a copy, never the registered one."""

    def configure(self, options: Mapping[str, str]) -> KeyProvider: ...


@runtime_checkable
class PreparedKeys(Protocol):
    """Optional on a ``KeyProvider``: begin the next wrap's slow work for ``key_ref`` (a KDF) in the
    background, so it overlaps the job's start; returns at once and never raises."""

    def prepare(self, key_ref: str) -> None: ...


@runtime_checkable
class CreatesKeys(Protocol):
    """Optional on a ``KeyProvider``: ``backstream keys create`` — make a key and return the
    reference to encrypt with."""

    async def create_key(self, key_ref: str) -> str: ...


@runtime_checkable
class ExportsPublicKeys(Protocol):
    """Optional on a ``KeyProvider``: ``backstream keys export-public`` — write a keystore holding
    only the public halves of ``key_ref``'s keys to ``out``; returns the reference to encrypt with."""

    async def export_public(self, key_ref: str, out: str, *, force: bool = False) -> str: ...


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


@runtime_checkable
class ContentTap(Protocol):
    """Optional on a ``Source``: a pass-through codec placed first in the backup pipeline that
    watches the dump's plaintext and fills ``job.content`` when it finishes (None: nothing to do)."""

    def content_tap(self, job: JobContext) -> Codec | None: ...


@runtime_checkable
class NamedDump(Protocol):
    """Optional on a ``Source``: the stored object's name (before the compressor's extension)
    for a one-stream dump, e.g. ``database.sqlite``; without it the object is called ``dump``."""

    filename: str


@runtime_checkable
class DumpsFiles(Protocol):
    """Optional on a ``Source``: a dump made of several files (a pg_dump directory, a cluster
    with tablespaces). The context yields ``(name, chunks)`` pairs, stored as one object each
    (several at once with ``--jobs``); it exits cleanly only if the whole dump succeeded.
    Backups use it instead of ``dump`` when a source has it."""

    def dump_files(self, job: JobContext) -> AbstractAsyncContextManager[AsyncIterator[tuple[str, ByteSource]]]: ...


@runtime_checkable
class RestoresFiles(Protocol):
    """Optional on a ``Source``: the restore of a several-file backup, given ``(name, chunks)``
    pairs in the manifest's order; like ``restore``, it leaves the target as it was when any
    chunk stream raises. A backup of more than one object needs a target that has it."""

    async def restore_files(self, files: AsyncIterable[tuple[str, ByteSource]], job: JobContext) -> None: ...


@runtime_checkable
class SizedSource(Protocol):
    """Optional on a ``Source``: roughly how many bytes its dump will be, for the percent a
    progress display shows (the SQLite file's size; PostgreSQL's ``pg_database_size``). It is
    an estimate: the dump may come out smaller or larger, and a display says so. None, an
    exception or a slow answer only means no percent; the backup goes on either way."""

    async def estimated_size(self) -> int | None:
        """The expected size of the dump in bytes, or None when there is no good guess."""
        ...


class SourceFactory(Protocol):
    """Sources for URL schemes (``register_sources``), e.g. ``sqlite``, ``postgresql``."""

    name: str
    schemes: frozenset[str]

    def open(self, url: str, options: Mapping[str, str]) -> Source: ...


@dataclass(frozen=True)
class RestoreRequest:
    """One restore as the ``restore`` command (or a caller of ``backstream.jobs.restore_request``)
    asks for it. ``backup`` is an id, a unique id prefix or ``latest``; ``repo`` may be empty when
    a restore path finds the repository elsewhere (a WAL config file); ``to`` is a target URL (None
    when a path's own option names the target, as ``--to-dir`` does); ``target_time`` the point in
    time as typed (each path parses it); ``options`` the target plugin's options (``-o``, ``jobs``);
    ``extra`` every option of the command line by argparse destination, including those that
    ``CommandOptions`` added (``to_dir``, ``target_lsn``, ...); ``keys`` a
    ``backstream.jobs.KeyOptions`` (None: defaults); ``progress`` is called with the size of each
    stored chunk read."""

    backup: str
    repo: str = ""
    to: str | None = None
    target_time: str | None = None
    force: bool = False
    source: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    keys: KeyOptions | None = None
    progress: Callable[[int], None] | None = None


@dataclass(frozen=True)
class RestoreOutcome:
    """What a restore did: the backup restored, the line the CLI prints, the document ``--json``
    prints, and, when the restored database can be checked (``restore --verify``), the manifest
    and the URL to check it at."""

    backup_id: str
    summary: str
    document: Mapping[str, Any]
    manifest: Manifest | None = None
    verify_target: str | None = None


@runtime_checkable
class RestorePath(Protocol):
    """Optional on a ``SourceFactory`` whose backups restore by more than streaming one backup into
    ``Source.restore``: into a data directory, or a dump rolled forward through a log archive.

    The restore runs the path of the backup's source kind: the manifest's kind when ``backup`` is
    an id, else the kind of the target (the kind whose path ``claims`` the request, as a physical
    PostgreSQL backup claims ``--to-dir``; otherwise the one serving ``to``'s URL scheme).
    ``claims`` is asked of every path and must be cheap and side-effect free; ``restore_backup``
    does the whole restore (the target is left untouched when it fails)."""

    def claims(self, request: RestoreRequest) -> bool: ...

    async def restore_backup(self, request: RestoreRequest, plugins: Plugins) -> RestoreOutcome: ...


@dataclass(frozen=True)
class DrillOutcome:
    """The checks of one restore drill, the restore's duration (None when it failed) and details
    recorded with the report (e.g. ``{"databases": {...}}``)."""

    results: Sequence[CheckResult]
    restore_seconds: float | None
    details: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class RestoreDrill(Protocol):
    """Optional on a ``SourceFactory`` whose backups are not drilled by restoring into a scratch
    database of their check plugin (``Check.scratch``): a physical base backup is drilled in a
    scratch directory with a throwaway server. ``drill`` restores ``manifest``'s backup somewhere
    temporary, checks it at ``level``, removes what it made, and reports; ``scratch`` is the
    user's ``--scratch`` (its meaning is the path's), ``repo_url`` the repository's URL as given."""

    async def drill(
        self,
        manifest: Manifest,
        repository: Repository,
        *,
        repo_url: str,
        level: str,
        plugins: Plugins,
        keys: KeyOptions,
        storage_options: Mapping[str, Any] | None = None,
        scratch: str | None = None,
    ) -> DrillOutcome: ...


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


@dataclass(frozen=True)
class RecoveryWindow:
    """The span a point-in-time restore can reach with one log archive and the backups: from
    ``start`` (the oldest backup the archive can roll forward) to ``end`` (about when the newest
    archived file was written); ``detail`` says what the ends are, for people."""

    start: datetime
    end: datetime
    detail: str = ""


@runtime_checkable
class LogArchive(Protocol):
    """A log archive kept beside the backups (``register_archives``): the files a database writes
    after a backup (PostgreSQL's WAL, MySQL's binlogs), each stored as an object with a JSON record
    ``<name>.json`` under ``prefix``; the record, written last, is the file's commit point.

    ``name`` labels it in reports; ``prefix`` is the repository folder it owns (ending in ``/``),
    which ``check`` and ``cleanup`` treat as its own. ``parse_record`` reads one record into the
    object it names, the context its encryption is bound to and the plaintext's sha256 (what
    ``check``, ``check --read-data`` and ``stats`` need); a bad record is a RepositoryError.
    ``holes`` lists the files missing from the archive that good backups (``manifests``, oldest
    first) need to roll forward, as ``check`` reports them; ``window`` is the span those backups
    and the archive let a restore reach (None: nothing to roll forward); ``prune`` decides, for
    every archived file, whether ``kept`` backups need it and unless ``dry_run`` deletes the others
    (record first), returning (the label ``prune`` prints, e.g. ``wal`` or ``binlog 7``, decision)
    pairs; the caller holds the repository's exclusive lock. ``fetch`` writes one archived file,
    named as in its record's path below ``prefix`` without ``.json``, decoded and checked, to the
    local ``path``. Pushing files in is the engine's own command (``wal-push``, ``binlog-archive``):
    where files come from differs too much to share.
    """

    name: str
    prefix: str

    def parse_record(self, data: bytes, where: str, repository_id: str) -> ArchivedFile: ...

    async def holes(self, repository: Repository, manifests: Sequence[Manifest]) -> list[Problem]: ...

    async def window(self, repository: Repository, manifests: Sequence[Manifest]) -> RecoveryWindow | None: ...

    async def prune(
        self, repository: Repository, kept: Sequence[Manifest], *, dry_run: bool
    ) -> list[tuple[str, ArchiveDecision]]: ...

    async def fetch(
        self, repository: Repository, name: str, path: str, *, plugins: Plugins, keys: KeyOptions | None = None
    ) -> None: ...


class Notifier(Protocol):
    """A kind of notification channel (``register_notifiers``): ``webhook``, ``email``, ...

    ``create`` checks the options of one ``[notifiers.NAME]`` table of a schedule file (a bad one
    is a ConfigError naming the option) and returns the channel that sends; it does no I/O.
    """

    name: str

    def create(self, options: Mapping[str, Any]) -> NotificationChannel: ...


class NotificationChannel(Protocol):
    """One configured channel: ``send`` delivers one ``backstream.notify.Notification`` (retrying
    as its kind of channel does) or raises a BackstreamError saying why it could not."""

    async def send(self, notification: Notification) -> None: ...


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
    name, as ``--physical`` does) and its ``option`` list (``-o KEY=VALUE``: the source's options, which
    a flag may append to with ``action="append_const"``).
    """

    extends: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def check(self, args: argparse.Namespace) -> None: ...
