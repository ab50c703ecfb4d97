"""The samplekv journal archive (a ``LogArchive``): closed journal files under ``samplekv/`` of a
repository, each stored as an object with a JSON record beside it, written last (the commit point).

A backup rolls forward with the journal file its store was writing and every later one, so those
are what ``holes`` (``check``), ``window`` (``stats``) and ``prune`` reason about; ``push_journal``
(the ``samplekv-archive`` command) puts one file in.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import anyio.to_thread
from backstream import (
    DEFAULT_COMPRESSION,
    ConfigError,
    Plugins,
    RecoveryWindow,
    RepositoryError,
    SourceError,
    Transform,
    file_sink,
    file_source,
)
from backstream.jobs import KeyOptions
from backstream.jobs.objects import PluginCodecs
from backstream.repository import Manifest, ObjectRecord, Repository, format_time, parse_time, utc_now
from backstream.repository.check import ArchivedFile, Problem
from backstream.repository.objects import Digest, read_object, store_object
from backstream.retention import ArchiveDecision, RecoveryStart, archive_to_keep
from backstream.retention import ArchivedFile as RetainedFile

from backstream_sample_plugin.store import SCHEME, journal_name, journal_number

PREFIX = "samplekv/"
RECORD_FORMAT = "samplekv-journal/1"


def record_path(number: int) -> str:
    return f"{PREFIX}{journal_name(number)}.json"


def journal_context(repository_id: str, number: int) -> dict[str, str]:
    """What an encrypted journal object's header is bound to (so it cannot pass for another file)."""
    return {"kind": "samplekv-journal", "repository_id": repository_id, "journal": journal_name(number)}


@dataclass(frozen=True)
class JournalRecord:
    """One archived journal file: its number, the stored object, its plaintext's sha256, when it was archived."""

    number: int
    object: ObjectRecord
    plaintext_sha256: str
    archived_at: datetime

    def to_json(self) -> bytes:
        document = {
            "format": RECORD_FORMAT,
            "number": self.number,
            "object": self.object.to_dict(),
            "plaintext_sha256": self.plaintext_sha256,
            "archived_at": format_time(self.archived_at),
        }
        return json.dumps(document, indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> JournalRecord:
        """Parse a record; anything else is a one-line RepositoryError naming ``where``."""
        try:
            raw = json.loads(data)
            if raw.get("format") != RECORD_FORMAT:
                raise ValueError(f"format {raw.get('format')!r} is not {RECORD_FORMAT!r}")
            record = cls(
                number=int(raw["number"]),
                object=ObjectRecord.from_dict(raw["object"]),
                plaintext_sha256=str(raw["plaintext_sha256"]),
                archived_at=parse_time(raw["archived_at"]),
            )
        except KeyError as exc:
            raise RepositoryError(f"{where} is not a samplekv journal record: no {exc.args[0]!r}") from None
        except (ValueError, TypeError, AttributeError) as exc:
            raise RepositoryError(f"{where} is not a samplekv journal record: {exc}") from None
        if not where.endswith(record_path(record.number)):
            raise RepositoryError(f"{where} is the record of journal file {journal_name(record.number)}")
        return record


class JournalArchive:
    """The journal archive of samplekv stores in a repository (``register_archives``)."""

    name = "journal"
    prefix = PREFIX

    def parse_record(self, data: bytes, where: str, repository_id: str) -> ArchivedFile:
        record = JournalRecord.from_json(data, where)
        return ArchivedFile(
            record=record.object,
            context=journal_context(repository_id, record.number),
            plaintext_sha256=record.plaintext_sha256,
        )

    async def holes(self, repository: Repository, manifests: Sequence[Manifest]) -> list[Problem]:
        """Journal files missing below the newest archived one that a good backup needs."""
        starts = backup_starts(manifests)
        numbers = await archived_numbers(repository)
        if not starts or not numbers:
            return []
        problems = []
        for number in range(min(start for _, start in starts), max(numbers)):
            if number not in numbers:
                cut_off = [manifest.backup_id for manifest, start in starts if start <= number]
                problems.append(
                    Problem(
                        "journal",
                        record_path(number),
                        f"journal file {journal_name(number)} is missing from the archive (later ones are there): "
                        f"backup(s) {', '.join(cut_off)} cannot roll forward past it",
                    )
                )
        return problems

    async def window(self, repository: Repository, manifests: Sequence[Manifest]) -> RecoveryWindow | None:
        """From the oldest backup whose journal files are all archived to when the newest one was archived."""
        numbers = await archived_numbers(repository)
        if not numbers:
            return None
        newest = max(numbers)
        for manifest, start in backup_starts(manifests):  # oldest first
            if all(number in numbers for number in range(start, newest + 1)):
                try:
                    record = await read_record(repository, newest)
                except RepositoryError:
                    return None  # a broken record: check names it
                return RecoveryWindow(
                    start=manifest.finished_at,
                    end=record.archived_at,
                    detail=f"backup {manifest.backup_id}, journal to {journal_name(newest)}",
                )
        return None

    async def prune(
        self, repository: Repository, kept: Sequence[Manifest], *, dry_run: bool
    ) -> list[tuple[str, ArchiveDecision]]:
        """Delete the journal files older than every kept backup's start: the record first, then the object."""
        starts = [RecoveryStart(manifest.backup_id, (start,)) for manifest, start in backup_starts(kept)]
        files = [RetainedFile(journal_name(n), (n,)) for n in sorted(await archived_numbers(repository))]
        decisions = archive_to_keep(starts, files)
        for decision in decisions:
            if not decision.keep and not dry_run:
                number = decision.file.position[0]
                record = await read_record(repository, number)
                await repository.storage.delete(record_path(number))
                await repository.storage.delete(record.object.path)
        return [(SCHEME, decision) for decision in decisions]

    async def fetch(
        self, repository: Repository, name: str, path: str, *, plugins: Plugins, keys: KeyOptions | None = None
    ) -> None:
        """Write archived journal file ``name`` (``000042.log``) to ``path``, decompressed and checked."""
        number = journal_number(name)
        if number is None or not await repository.storage.exists(record_path(number)):
            raise ConfigError(f"{name!r} is not in the journal archive of {repository.url}")
        record = await read_record(repository, number)
        await read_object(
            repository,
            record.object,
            file_sink(path),  # appears only if every check passed
            codecs=PluginCodecs(plugins, keys=keys),
            context=journal_context(repository.repository_id, number),
            plaintext_sha256=record.plaintext_sha256,
            described_by="journal record",
        )


async def push_journal(
    plugins: Plugins, repository: Repository, local: str, *, compress: str = DEFAULT_COMPRESSION
) -> JournalRecord | None:
    """Archive one closed journal file: its object first, then its record. None when it is already
    archived with the same content; a different file under the same name is refused."""
    name = os.path.basename(local)
    number = journal_number(name)
    if number is None:
        raise ConfigError(f"{local}: not a journal file (expected a name like 000042.log)")
    codec, _, level = compress.partition(":")
    codecs = PluginCodecs(plugins)  # the sample stores unencrypted; key_refs=... would encrypt
    async with repository.lock("samplekv-archive", exclusive=False):  # prune deletes under the exclusive one
        if await repository.storage.exists(record_path(number)):
            existing = await read_record(repository, number)
            if await anyio.to_thread.run_sync(_sha256, local) == existing.plaintext_sha256:
                return None
            raise RepositoryError(f"{name} is already archived with other content; refusing to overwrite it")
        digest = Digest()
        stored = await store_object(
            repository,
            f"{PREFIX}{name}{codecs.compressor(codec).extension}",
            file_source(local),
            name=name,
            codecs=codecs,
            codec=codec,
            codec_options={"level": level} if level else {},
            context=journal_context(repository.repository_id, number),
            taps=[Transform("sha256", digest)],  # the plaintext's sha256, in the same pass
        )
        record = JournalRecord(number, stored, digest.hexdigest(), utc_now())
        await repository.storage.write_bytes(record_path(number), record.to_json())
        return record


def backup_starts(manifests: Sequence[Manifest]) -> list[tuple[Manifest, int]]:
    """The good samplekv backups among ``manifests``, each with the first journal file it needs."""
    return [
        (manifest, manifest.source.metadata["journal"])
        for manifest in manifests
        if manifest.ok and manifest.source.kind == SCHEME and isinstance(manifest.source.metadata.get("journal"), int)
    ]


async def archived_numbers(repository: Repository) -> set[int]:
    """The numbers of the journal files with a record (the listing alone: no record is read)."""
    paths = await repository.storage.list(PREFIX)
    names = (path.removeprefix(PREFIX).removesuffix(".json") for path in paths if path.endswith(".json"))
    return {number for number in map(journal_number, names) if number is not None}


async def read_record(repository: Repository, number: int) -> JournalRecord:
    where = record_path(number)
    return JournalRecord.from_json(await repository.storage.read_bytes(where), where)


def _sha256(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
