"""The one path of a stored object, for backups and log archives alike.

``store_object``: data → (taps) → compress → (encrypt) → storage, returning the ``ObjectRecord``
(stored size and sha256, plaintext size, codec, cipher, key references). ``read_object`` and
``open_object``: stored bytes → check size and sha256 → (decrypt, checking the bound context) →
decompress → check plaintext size (and sha256 when known). A read that fails any check raises
IntegrityError before its sink commits or its chunk iterator ends; a store that fails leaves no
object (the storage writes it atomically).

The plugins come in through ``ObjectCodecs`` (compressors by name, the key envelope), so this
module knows no plugin; ``backstream.jobs.objects.PluginCodecs`` implements it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import anyio

from backstream.errors import ConfigError, IntegrityError, primary_error
from backstream.pipeline import LINK_CHUNKS, LateTransform, Pipeline, Transform
from backstream.progress import Progress
from backstream.protocols import ByteSink, ByteSource, ByteWriter, Codec, CompressorFactory
from backstream.repository.manifest import ObjectRecord
from backstream.repository.repo import Repository
from backstream.streams import iterable_source


@dataclass(frozen=True)
class Sealing:
    """The encrypting stage for one new object, the cipher suite's name, and the key references
    its data key was wrapped for."""

    transform: Transform
    cipher: str
    key_refs: tuple[str, ...]


class ObjectCodecs(Protocol):
    """What the object path needs from the plugins: a compressor by name and the key envelope.

    ``encrypts`` tells whether new objects are encrypted, and ``sealing`` then gives the
    encrypting stage (None when they are not); ``unsealing`` reads an encrypted object's header
    from ``stored``, checks it is bound to ``context``, and returns the decrypting stage and the
    rest of the stream. ``where`` names the object in messages and the audit log.
    """

    @property
    def encrypts(self) -> bool: ...

    def compressor(self, name: str) -> CompressorFactory: ...

    async def sealing(self, context: Mapping[str, str], where: str) -> Sealing | None: ...

    async def unsealing(
        self, stored: AsyncIterator[bytes], context: Mapping[str, str], where: str
    ) -> tuple[Transform, AsyncIterator[bytes]]: ...


class Digest:
    """A pass-through codec that counts and hashes (sha256) what flows through it: put it in
    ``store_object``'s ``taps`` to learn the plaintext's sha256 in the same pass."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> bytes:
        self._sha256.update(chunk)
        self.size += len(chunk)
        return chunk

    def finish(self) -> bytes:
        return b""

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


class _Checked:
    """A decompressor that also counts (and, when ``sha256`` is given, hashes) its output, failing
    the pipeline (so its sink commits nothing) unless the plaintext is what ``record`` says. One
    codec, so the check costs no extra pipeline stage."""

    def __init__(self, codec: Codec, record: ObjectRecord, sha256: str | None, described_by: str) -> None:
        self._codec, self._record, self._by = codec, record, described_by
        self._expected = sha256
        self._digest = hashlib.sha256() if sha256 is not None else None
        self._size = 0

    def _count(self, out: bytes) -> bytes:
        self._size += len(out)
        if self._size > self._record.plaintext_size:
            raise IntegrityError(
                f"{self._record.path} decodes to more than the {self._record.plaintext_size} bytes its {self._by} says"
            )
        if self._digest is not None:
            self._digest.update(out)
        return out

    def update(self, chunk: bytes) -> bytes:
        return self._count(self._codec.update(chunk))

    def finish(self) -> bytes:
        out = self._count(self._codec.finish())
        if self._size != self._record.plaintext_size:
            raise IntegrityError(
                f"{self._record.path} decodes to {self._size} bytes; its {self._by} says {self._record.plaintext_size}"
            )
        if self._digest is not None and self._digest.hexdigest() != self._expected:
            raise IntegrityError(f"{self._record.path} decodes to other bytes than were stored (plaintext sha256)")
        return out


async def store_object(
    repository: Repository,
    path: str,
    data: ByteSource,
    *,
    name: str,
    codecs: ObjectCodecs,
    codec: str,
    context: Mapping[str, str],
    codec_options: Mapping[str, str] | None = None,
    taps: Sequence[Transform] = (),
) -> ObjectRecord:
    """Store ``data`` at ``path`` (relative to the repository): ``taps`` see the plaintext first,
    then it is compressed with ``codec`` and, when ``codecs`` seals, encrypted with ``context``
    bound into the header (a read must name the same context). Returns the object's record."""
    options = {str(k): str(v) for k, v in (codec_options or {}).items()}
    transforms: list[Transform | LateTransform] = [
        *taps,
        Transform(f"compress:{codec}", codecs.compressor(codec).compressor(options)),
    ]
    sealed: list[Sealing] = []
    if codecs.encrypts:

        async def seal() -> Codec:
            # Awaited while the source opens: a passphrase's KDF overlaps the dump tool's start.
            sealing = await codecs.sealing(context, f"{repository.url}/{path}")
            if sealing is None:
                raise ConfigError(f"{path}: the codecs said they encrypt but gave no encrypting stage")
            sealed.append(sealing)
            return sealing.transform.codec

        transforms.append(LateTransform("encrypt", seal))
    result = await Pipeline(data, transforms, repository.storage.open_write(path)).run()
    sealing = sealed[0] if sealed else None
    return ObjectRecord(
        name=name,
        path=path,
        stored_size=result.bytes_out,
        stored_sha256=result.sha256,
        plaintext_size=result.bytes_in,
        codec=codec,
        codec_options=options,
        cipher=None if sealing is None else sealing.cipher,
        key_refs=() if sealing is None else sealing.key_refs,
        stage_seconds={stage.name: round(stage.busy_seconds, 3) for stage in result.stages},
    )


async def read_object(
    repository: Repository,
    record: ObjectRecord,
    sink: ByteSink,
    *,
    codecs: ObjectCodecs,
    context: Mapping[str, str],
    plaintext_sha256: str | None = None,
    progress: Progress | None = None,
    described_by: str = "manifest",
) -> None:
    """Decode the object ``record`` names into ``sink``, which commits only if every check passed:
    stored size and sha256, the header's bound ``context`` (when the object is encrypted),
    plaintext size and, if given, ``plaintext_sha256``. ``progress`` counts stored bytes read;
    ``described_by`` names what recorded the sizes, for messages."""
    codec = codecs.compressor(record.codec)  # an unknown codec fails before anything is read
    async with verified(repository.storage.open_read(record.path), record, progress, described_by) as stored:
        transforms: list[Transform] = []
        if record.cipher:
            decrypt, stored = await codecs.unsealing(stored, context, f"{repository.url}/{record.path}")
            transforms.append(decrypt)
        decoder = _Checked(codec.decompressor(), record, plaintext_sha256, described_by)
        transforms.append(Transform(f"decompress:{record.codec}", decoder))
        await Pipeline(iterable_source(stored), transforms, sink).run()


@asynccontextmanager
async def open_object(
    repository: Repository,
    record: ObjectRecord,
    *,
    codecs: ObjectCodecs,
    context: Mapping[str, str],
    plaintext_sha256: str | None = None,
    progress: Progress | None = None,
    described_by: str = "manifest",
) -> AsyncIterator[AsyncIterator[bytes]]:
    """``read_object`` as a chunk iterator (for a consumer such as a source's ``restore()``): the
    iterator ends normally only if every check passed; otherwise it raises the failure."""
    bridge = _Bridge()
    failure: BaseException | None = None

    async def run() -> None:
        await read_object(
            repository,
            record,
            bridge.sink(),
            codecs=codecs,
            context=context,
            plaintext_sha256=plaintext_sha256,
            progress=progress,
            described_by=described_by,
        )

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                yield bridge.chunks()
            except BaseException as exc:
                # The consumer's own error wins; a cancellation caused by the read failing is
                # replaced below by the read's error.
                if not isinstance(exc, anyio.get_cancelled_exc_class()):
                    failure = exc
                raise
            tg.cancel_scope.cancel()  # a consumer that stopped early must not leave it waiting
    except BaseExceptionGroup as group:
        raise (failure or primary_error(group)) from None


@asynccontextmanager
async def verified(
    stored: ByteSource, record: ObjectRecord, progress: Progress | None = None, described_by: str = "manifest"
) -> AsyncIterator[AsyncIterator[bytes]]:
    """``stored`` checked against ``record``: too many bytes fail at once; a wrong size or sha256
    fails at the end, before the stream reports its end. ``progress`` is told every chunk's size."""
    async with stored as chunks:

        async def checking() -> AsyncIterator[bytes]:
            digest = hashlib.sha256()
            size = 0
            async for chunk in chunks:
                size += len(chunk)
                if size > record.stored_size:
                    raise IntegrityError(
                        f"{record.path} is larger than its {described_by} says ({record.stored_size} bytes)"
                    )
                digest.update(chunk)
                if progress is not None:
                    progress(len(chunk))
                yield chunk
            if size != record.stored_size:
                raise IntegrityError(f"{record.path} is truncated: {size} of {record.stored_size} bytes")
            if digest.hexdigest() != record.stored_sha256:
                raise IntegrityError(
                    f"{record.path} does not match its {described_by} sha256: it was modified or corrupted"
                )

        yield checking()


class _Bridge:
    """Turns a pipeline's sink into an async iterator: it ends normally only after the sink
    committed (every check passed); otherwise it raises the pipeline's error."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[bytes](max_buffer_size=LINK_CHUNKS)
        self._error: BaseException | None = None
        self._done = False

    @asynccontextmanager
    async def sink(self) -> AsyncIterator[ByteWriter]:
        try:
            yield self
            self._done = True
        except BaseException as exc:
            self._error = primary_error(exc)
            raise
        finally:
            self._send.close()

    async def write(self, chunk: bytes) -> None:
        await self._send.send(chunk)

    async def chunks(self) -> AsyncIterator[bytes]:
        with self._receive:
            async for chunk in self._receive:
                yield chunk
        if self._error is not None:
            raise self._error
        if not self._done:
            raise IntegrityError("the stored object's stream ended early")
