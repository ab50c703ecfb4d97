"""Repository check and cleanup: every manifest parses, every object it names exists with the
recorded size and sha256; orphans (objects no manifest names, ``.partial`` temp objects, stale locks).
The same for the log archives kept beside the backups (``LogArchive`` plugins): every record
parses and the object it names is there, whole.

``cleanup`` removes orphans older than a grace period under the exclusive lock, never a path a manifest names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio

from backstream.errors import BackstreamError
from backstream.progress import Progress
from backstream.protocols import EmptyFolders, LogArchive, MultipartUploads
from backstream.repository.blobs import list_under, read_small
from backstream.repository.ids import backup_id_time, format_time, is_backup_id, utc_now
from backstream.repository.lock import LOCKS_PREFIX, read_locks, stale_reason
from backstream.repository.manifest import Manifest, ObjectRecord
from backstream.repository.repo import BACKUPS_PREFIX, MANIFEST_NAME, Repository

DRILLS_DIR = "drills"
TEMP_SUFFIX = ".partial"

ReadData = Callable[[Manifest, ObjectRecord], Awaitable[Any]]
"""Reads one object end to end (decrypt, decompress); raises on any problem."""


@dataclass(frozen=True)
class ArchivedFile:
    """One committed file of an archive, as check sees it: the object its record names (as an
    ObjectRecord), the context its encryption is bound to, and the sha256 of its plaintext."""

    record: ObjectRecord
    context: dict[str, str]
    plaintext_sha256: str


ReadArchived = Callable[[ArchivedFile], Awaitable[Any]]
"""Reads one archived file end to end (decrypt, decompress, plaintext sha256); raises on any problem."""

RECORD_SUFFIX = ".json"
ARCHIVE_CONCURRENCY = 16
"""Archived files checked at a time (each is a few requests on remote storage)."""
ARCHIVE_UPLOAD_GRACE = timedelta(hours=1)
"""A multipart upload under an archive younger than this may be a push running now: a note, not an orphan."""


@dataclass(frozen=True)
class Problem:
    """Something wrong in the repository: ``kind`` is manifest, missing, size, sha256, data or lock."""

    kind: str
    path: str
    detail: str


@dataclass(frozen=True)
class Orphan:
    """A stored path no manifest needs: why, and since when (None when its age is unknown)."""

    path: str
    reason: str
    since: datetime | None
    upload_id: str | None = None  # an incomplete multipart upload to ``path``, not an object
    folder: bool = False  # an empty folder (``path`` ends in ``/``) of an EmptyFolders storage, not an object

    def age(self, now: datetime) -> timedelta | None:
        return None if self.since is None else now - self.since


@dataclass
class CheckReport:
    """What ``check`` found."""

    manifests: int = 0
    objects: int = 0
    archived: int = 0
    bytes_checked: int = 0
    read_data: bool = False
    problems: list[Problem] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.orphans

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "manifests": self.manifests,
            "objects": self.objects,
            "archived": self.archived,
            "bytes_checked": self.bytes_checked,
            "read_data": self.read_data,
            "problems": [vars(p) for p in self.problems],
            "orphans": [
                {
                    "path": o.path,
                    "reason": o.reason,
                    "since": None if o.since is None else format_time(o.since),
                    **({"upload_id": o.upload_id} if o.upload_id else {}),
                }
                for o in self.orphans
            ],
            "in_progress": list(self.in_progress),
            "notes": list(self.notes),
        }

    def summary(self) -> str:
        what = f"{self.manifests} manifests, {self.objects} objects"
        if self.archived:
            what += f", {self.archived} archived files"
        what += f" ({self.bytes_checked} bytes hashed"
        what += ", read end to end)" if self.read_data else ")"
        if self.ok:
            return f"OK: {what}"
        return f"FAILED: {len(self.problems)} problems, {len(self.orphans)} orphans in {what}"


async def check_repository(
    repository: Repository,
    *,
    read_data: ReadData | None = None,
    hash_objects: bool = True,
    archives: Sequence[LogArchive] = (),
    read_archived: ReadArchived | None = None,
    progress: Progress | None = None,
) -> CheckReport:
    """Check every manifest and object, and every record and object of ``archives``; with
    ``read_data``/``read_archived``, also read each object end to end. ``progress`` is called
    with each object's stored size once it is checked (the caller may tell it the total)."""
    storage = repository.storage
    report = CheckReport(read_data=read_data is not None)
    for archive in archives:
        await _check_archive(repository, archive, report, read_archived, hash_objects, progress)
    live_ids: set[str] = set()
    for path, lock in await read_locks(storage):
        if lock is None:
            report.problems.append(Problem("lock", path, "not a valid lock file"))
            report.orphans.append(Orphan(path, "invalid lock file", None))
        elif (why := stale_reason(lock)) is not None:
            report.orphans.append(Orphan(path, f"stale lock ({lock.describe()}): {why}", lock.heartbeat_at))
        elif lock.backup_id:
            live_ids.add(lock.backup_id)
    groups: dict[str, list[str]] = {}
    for path in await list_under(storage, BACKUPS_PREFIX):
        groups.setdefault(path[len(BACKUPS_PREFIX) :].split("/", 1)[0], []).append(path)
    for backup_id, paths in sorted(groups.items()):
        await _check_group(repository, backup_id, paths, live_ids, report, read_data, hash_objects, progress)
    if isinstance(storage, EmptyFolders):
        for path, since in await storage.empty_folders(BACKUPS_PREFIX):
            backup_id = path[len(BACKUPS_PREFIX) :].split("/", 1)[0]
            if backup_id in live_ids or f"{BACKUPS_PREFIX}{backup_id}/{MANIFEST_NAME}" in groups.get(backup_id, ()):
                continue  # a running backup's, or a folder inside a committed backup (harmless)
            reason = "empty folder without a manifest (an interrupted backup)"
            report.orphans.append(Orphan(path, reason, since, folder=True))
    uploads = await storage.list_multipart_uploads() if isinstance(storage, MultipartUploads) else None
    if uploads is None:
        report.notes.append("abandoned multipart uploads: not checked (this storage has none, or cannot list them)")
    else:
        now = utc_now()
        for path, upload_id, initiated in uploads:
            owner = path[len(BACKUPS_PREFIX) :].split("/", 1)[0] if path.startswith(BACKUPS_PREFIX) else None
            if owner is not None and owner in live_ids:
                continue  # a running backup is writing it
            reason = f"incomplete multipart upload {upload_id[:16]}…"
            if any(path.startswith(a.prefix) for a in archives) and now - initiated < ARCHIVE_UPLOAD_GRACE:
                report.notes.append(f"{path}: {reason} of a push started {format_time(initiated)} (running?)")
                continue
            report.orphans.append(Orphan(path, reason, initiated, upload_id=upload_id))
    return report


async def _check_group(
    repository: Repository,
    backup_id: str,
    paths: list[str],
    live_ids: set[str],
    report: CheckReport,
    read_data: ReadData | None,
    hash_objects: bool,
    progress: Progress | None,
) -> None:
    storage = repository.storage
    since = backup_id_time(backup_id) if is_backup_id(backup_id) else None
    manifest_path = f"{BACKUPS_PREFIX}{backup_id}/{MANIFEST_NAME}"
    if manifest_path not in paths:
        if backup_id in live_ids:
            report.in_progress.append(backup_id)
            return
        reason = "no manifest (an interrupted or deleted backup)" if since else "not a backup directory"
        report.orphans += [Orphan(p, reason, since) for p in paths]
        return
    report.manifests += 1
    try:
        manifest = Manifest.from_json(await read_small(storage, manifest_path), where=manifest_path)
        if manifest.backup_id != backup_id:
            raise BackstreamError(f"{manifest_path} names backup {manifest.backup_id}")
    except BackstreamError as exc:
        report.problems.append(Problem("manifest", manifest_path, str(exc)))
        return  # never treat the objects of an unreadable manifest as orphans
    named = {record.path for record in manifest.objects}
    for path in paths:
        rest = path[len(BACKUPS_PREFIX) + len(backup_id) + 1 :]
        if path in named or rest == MANIFEST_NAME or (rest.startswith(DRILLS_DIR + "/") and rest.endswith(".json")):
            continue
        reason = (
            "temporary object of an unfinished write" if path.endswith(TEMP_SUFFIX) else "not named by the manifest"
        )
        report.orphans.append(Orphan(path, reason, since))
    present = set(paths)
    for record in manifest.objects:
        report.objects += 1
        if record.path not in present:
            report.problems.append(Problem("missing", record.path, "the object named by the manifest is missing"))
            continue
        size = await storage.size(record.path)
        if size != record.stored_size:
            report.problems.append(
                Problem("size", record.path, f"{size} bytes stored, the manifest says {record.stored_size}")
            )
            continue
        if hash_objects:
            problem = await _hash(repository, record)
            report.bytes_checked += record.stored_size
            if problem is not None:
                report.problems.append(problem)
                continue
        if read_data is not None:
            try:
                await read_data(manifest, record)
            except BackstreamError as exc:
                report.problems.append(Problem("data", record.path, str(exc)))
        if progress is not None:
            progress(record.stored_size)


async def _check_archive(
    repository: Repository,
    archive: LogArchive,
    report: CheckReport,
    read_archived: ReadArchived | None,
    hash_objects: bool,
    progress: Progress | None,
) -> None:
    storage = repository.storage
    paths = await storage.list(archive.prefix)
    present = set(paths)
    named: set[str] = set()
    unreadable: set[str] = set()  # "<dir>/<file>" of records that do not parse
    limiter = anyio.CapacityLimiter(ARCHIVE_CONCURRENCY)
    found: list[Problem] = []

    async def one(path: str) -> None:
        async with limiter:
            try:
                archived = archive.parse_record(await read_small(storage, path), path, repository.repository_id)
            except BackstreamError as exc:
                found.append(Problem("record", path, str(exc)))
                unreadable.add(path[: -len(RECORD_SUFFIX)])  # its object is no orphan: the record is broken
                return
            record = archived.record
            named.add(record.path)
            if read_archived is None:
                await _stored_whole(repository, record, present, found, report, hash_objects)
            elif record.path not in present:
                found.append(Problem("missing", record.path, "the object named by the record is missing"))
            else:  # reading it end to end checks its stored size and sha256 too: one read, no HEAD
                try:
                    await read_archived(archived)
                    report.bytes_checked += record.stored_size
                except BackstreamError as exc:
                    found.append(Problem("data", record.path, str(exc)))
            if progress is not None:
                progress(record.stored_size)

    records = sorted(p for p in paths if p.endswith(RECORD_SUFFIX))
    report.archived += len(records)
    async with anyio.create_task_group() as tg:
        for path in records:
            tg.start_soon(one, path)
    report.problems += sorted(found, key=lambda problem: problem.path)
    for path in sorted(present - named):
        if path.endswith(RECORD_SUFFIX) or any(path == stem or path.startswith(stem + ".") for stem in unreadable):
            continue
        if _is_temporary(path):  # a push writes through one: running now, or interrupted (no age to tell)
            if await storage.exists(path):
                report.notes.append(f"{path}: a temporary object of a {archive.name} push (running, or interrupted)")
            continue
        # A push writes its object first and its record last: a record that appeared since the
        # listing means the push was running; one that was listed names another object.
        if not await storage.exists(path) or await _has_new_record(storage, path, present):
            continue
        report.orphans.append(Orphan(path, f"{archive.name} archive: no record (an interrupted push)", None))


def _is_temporary(path: str) -> bool:
    return path.rpartition("/")[2].startswith(".") and path.endswith(TEMP_SUFFIX)


async def _has_new_record(storage: Any, path: str, listed: set[str]) -> bool:
    """Whether a record for the archived object ``path`` (``dir/<file>.json`` for ``dir/<file>.<ext>...``;
    file names may hold dots, as binlogs' do) exists now that was not in the listing."""
    directory, _, name = path.rpartition("/")
    parts = name.split(".")
    for end in range(1, len(parts) + 1):  # up to the whole name: an object stored with codec none
        record = f"{directory}/{'.'.join(parts[:end])}{RECORD_SUFFIX}"
        if record not in listed and await storage.exists(record):
            return True
    return False


async def _stored_whole(
    repository: Repository,
    record: ObjectRecord,
    present: set[str],
    found: list[Problem],
    report: CheckReport,
    hash_objects: bool,
) -> bool:
    """Whether ``record``'s object is there with its recorded size (and sha256); problems go to ``found``."""
    if record.path not in present:
        found.append(Problem("missing", record.path, "the object named by the record is missing"))
        return False
    if hash_objects:  # reading it whole checks its size too: no separate request for the size
        problem = await _hash(repository, record, described_by="record")
        report.bytes_checked += record.stored_size
        if problem is not None:
            found.append(problem)
        return problem is None
    try:
        size = await repository.storage.size(record.path)
    except BackstreamError as exc:  # gone since the listing, or unreadable: this file's problem only
        found.append(Problem("missing", record.path, f"cannot read: {exc}"))
        return False
    if size != record.stored_size:
        found.append(Problem("size", record.path, f"{size} bytes stored, the record says {record.stored_size}"))
        return False
    return True


async def _hash(repository: Repository, record: ObjectRecord, described_by: str = "manifest") -> Problem | None:
    digest = hashlib.sha256()
    size = 0
    try:
        async with repository.storage.open_read(record.path) as chunks:
            async for chunk in chunks:
                size += len(chunk)
                digest.update(chunk)
    except BackstreamError as exc:
        return Problem("missing", record.path, f"cannot read: {exc}")
    if size != record.stored_size:
        return Problem("size", record.path, f"{size} bytes read, the {described_by} says {record.stored_size}")
    if digest.hexdigest() != record.stored_sha256:
        return Problem(
            "sha256", record.path, f"sha256 does not match the {described_by}: the object was modified or corrupted"
        )
    return None


@dataclass(frozen=True)
class CleanupAction:
    """One orphan and what cleanup did (or would do) with it."""

    path: str
    reason: str
    action: str  # "removed", "would remove", "kept"
    detail: str = ""


async def cleanup(
    repository: Repository, *, older_than: timedelta, dry_run: bool = False, archives: Sequence[LogArchive] = ()
) -> list[CleanupAction]:
    """Remove orphans older than ``older_than`` (under the exclusive lock unless ``dry_run``).
    Orphans in ``archives`` are listed as kept (a push may be writing them), except multipart
    uploads, whose age is known."""
    if dry_run:
        return await _cleanup(repository, older_than, dry_run=True, own_lock=None, archives=archives)
    async with repository.lock("cleanup", exclusive=True) as mine:
        return await _cleanup(repository, older_than, dry_run=False, own_lock=mine.path, archives=archives)


async def _cleanup(
    repository: Repository,
    older_than: timedelta,
    *,
    dry_run: bool,
    own_lock: str | None,
    archives: Sequence[LogArchive] = (),
) -> list[CleanupAction]:
    report = await check_repository(repository, hash_objects=False, archives=archives)
    now = utc_now()
    actions: list[CleanupAction] = []
    for orphan in report.orphans:
        if orphan.path == own_lock:
            continue
        if orphan.upload_id is None and not orphan.path.startswith((BACKUPS_PREFIX, LOCKS_PREFIX)):
            detail = "an archive object: a push may be writing it; remove it by hand once no archiver runs"
            actions.append(CleanupAction(orphan.path, orphan.reason, "kept", detail))
            continue
        age = orphan.age(now)
        if age is None:
            actions.append(CleanupAction(orphan.path, orphan.reason, "kept", "its age is unknown; remove it by hand"))
            continue
        if age < older_than:
            actions.append(CleanupAction(orphan.path, orphan.reason, "kept", "younger than the grace period"))
            continue
        if dry_run:
            actions.append(CleanupAction(orphan.path, orphan.reason, "would remove"))
            continue
        try:
            if orphan.upload_id is not None:  # reported only by MultipartUploads storages
                assert isinstance(repository.storage, MultipartUploads)
                await repository.storage.abort_multipart_upload(orphan.path, orphan.upload_id)
            elif orphan.folder:  # reported only by EmptyFolders storages
                assert isinstance(repository.storage, EmptyFolders)
                await repository.storage.remove_empty_folder(orphan.path)
            else:
                await repository.storage.delete(orphan.path)
            actions.append(CleanupAction(orphan.path, orphan.reason, "removed"))
        except BackstreamError as exc:
            actions.append(CleanupAction(orphan.path, orphan.reason, "kept", f"could not remove: {exc}"))
    return actions
