"""Point-in-time restore of a PostgreSQL physical base backup into a data directory, optionally started.

Extracts the tar streams (``tarfile`` ``r|`` in a worker thread): ``base.tar`` into the data
directory and each tablespace's ``<oid>.tar`` into its location (the original one, or where
``tablespace_map`` moves it; the server makes the links from the data directory's
``tablespace_map`` file). Then writes recovery.signal, the restore_command (``backstream
wal-fetch``) and the recovery target, and with ``start`` runs the server until recovery reaches the
target; a missing WAL segment is named in the error.
"""

from __future__ import annotations

import os
import pwd
import queue
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from backstream import ConfigError, Plugins, RepositoryError, SourceError, primary_error
from backstream.jobs import ObjectReader
from backstream.jobs.common import open_repository
from backstream.jobs.encryption import KeyOptions
from backstream.repository import Manifest, ObjectRecord
from backstream.tarsafe import extract_member

from backstream_plugins.postgresql.continuity import archived_names, backup_gap
from backstream_plugins.postgresql.tablespace_map import format_tablespace_map, parse_tablespace_map
from backstream_plugins.postgresql.targets import PHYSICAL_KIND, RecoveryTarget, choose_backup
from backstream_plugins.postgresql.walconfig import WalConfig

BASE_TAR = "base.tar"
MANIFEST_FILE = "backup_manifest"
WAL_CONFIG_NAME = "backstream-wal.toml"
SERVER_LOG_NAME = "backstream-recovery.log"


@dataclass(frozen=True)
class RestoredDir:
    """What ``restore_to_dir`` did."""

    backup_id: str
    data_dir: str
    target: str
    started: bool
    state: str  # "prepared", "promoted" or "in recovery"


def server_user() -> pwd.struct_passwd | None:
    """The account that runs the restored server: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ConfigError(
            "running as root, but there is no 'postgres' user to own and run the restored server"
        ) from None


def backstream_executable() -> str:
    """The ``backstream`` command for archive_command/restore_command: $BACKSTREAM_EXECUTABLE, else this
    installation's by absolute path (the postgres user must be able to run it and its interpreter)."""
    override = os.environ.get("BACKSTREAM_EXECUTABLE")
    if override:
        return override
    sibling = Path(sys.executable).with_name("backstream")
    if sibling.is_file():
        return str(sibling)
    found = shutil.which("backstream")
    if found is None:
        raise ConfigError("cannot find the backstream command to use in restore_command; is it on PATH?")
    return os.path.abspath(found)


async def restore_to_dir(
    backup: str,
    *,
    wal: WalConfig,
    to_dir: str,
    target: RecoveryTarget,
    start: bool = False,
    port: int | None = None,
    pg_bindir: str | None = None,
    keys: KeyOptions | None = None,
    plugins: Plugins | None = None,
    start_timeout: float = 600.0,
    tablespace_map: Mapping[str, str] | None = None,
) -> RestoredDir:
    """Lay down base backup ``backup`` (id, prefix or ``latest``) in ``to_dir`` and configure recovery.

    :param tablespace_map: original tablespace location -> where to restore it (absolute paths);
        tablespaces not named go back to their original locations, which must be empty or absent.
    """
    keys = keys or KeyOptions()  # one per job: its key providers are configured once
    plugins = plugins or Plugins.load()
    repository = await open_repository(plugins, wal.repo, wal.storage_options)
    if backup == "latest":
        manifest = choose_backup(await repository.manifests(), target)
        if manifest is None:
            raise RepositoryError(
                f"no physical base backup in {repository.url} ended before {target.describe}; "
                "take one with: backstream backup postgresql://... --physical"
            )
    else:
        manifest = await repository.resolve(backup)
    if manifest.source.kind != PHYSICAL_KIND:
        raise ConfigError(
            f"backup {manifest.backup_id} is a {manifest.source.kind} backup; "
            "--to-dir needs a physical one (backup --physical)"
        )
    base, spaces, extra = _layout(manifest)
    if not target.allows(manifest):
        raise ConfigError(f"backup {manifest.backup_id} ended after {target.describe}; it cannot recover to it")
    places = _tablespace_places(manifest, spaces, tablespace_map or {})
    owner = server_user()
    data_dir = Path(os.path.normpath(Path(to_dir).absolute()))
    for place in places.values():
        if place == data_dir or data_dir in place.parents or place in data_dir.parents:
            raise ConfigError(f"tablespace directory {place} and data directory {data_dir} must not contain each other")
    created = _prepare_dir(data_dir, owner)
    prepared: list[tuple[Path, bool]] = []
    try:
        moved = {Path(os.path.normpath(new)) for new in (tablespace_map or {}).values()}
        for place in places.values():
            what = "directory mapped for a tablespace" if place in moved else "tablespace directory"
            prepared.append((place, _prepare_dir(place, owner, what=what)))
        reader = ObjectReader(plugins, repository, manifest, keys, None)
        async with reader.plaintext(base) as chunks:
            await _extract(chunks, data_dir)
        for oid, record in spaces.items():
            async with reader.plaintext(record) as chunks:
                await _extract(chunks, places[oid])
        if places:
            _write_tablespace_map(data_dir, places)
        for record in extra:  # backup_manifest of a spooled backup: where pg_basebackup -Fp puts it
            async with reader.plaintext(record) as chunks:
                await _write_file(chunks, data_dir / MANIFEST_FILE)
        _write_recovery(data_dir, manifest, wal, target, port, keys)
        if owner is not None:
            for root in (data_dir, *places.values()):
                _chown_tree(root, owner.pw_uid, owner.pw_gid)
    except BaseException:
        with anyio.CancelScope(shield=True):
            _clear(data_dir, remove_dir=created)
            for place, made in prepared:
                _clear(place, remove_dir=made)
        raise
    if not start:
        return RestoredDir(manifest.backup_id, str(data_dir), target.describe, False, "prepared")
    state = await start_restored(
        data_dir, manifest, repository.storage, target=target, port=port, pg_bindir=pg_bindir, timeout=start_timeout
    )
    return RestoredDir(manifest.backup_id, str(data_dir), target.describe, True, state)


async def start_restored(
    data_dir: str | Path,
    manifest: Manifest,
    storage: Any,
    *,
    target: RecoveryTarget,
    port: int | None = None,
    pg_bindir: str | None = None,
    timeout: float = 600.0,
) -> str:
    """Start the server of a data directory that ``restore_to_dir(start=False)`` prepared from
    ``manifest``, as its owner, and wait until recovery reaches ``target``; returns the state
    (``promoted`` or ``in recovery``). ``storage`` is the repository's, to name a missing WAL segment."""
    bindir = server_bindir(pg_bindir, manifest)
    return await _start_and_wait(Path(data_dir), bindir, port, server_user(), target, timeout, storage, manifest)


# --- the data directory --------------------------------------------------------------------------


def _layout(manifest: Manifest) -> tuple[ObjectRecord, dict[str, ObjectRecord], list[ObjectRecord]]:
    """A physical backup's objects: ``base.tar``, the tablespaces' tars by oid, and ``backup_manifest``."""
    incomplete = ConfigError(f"backup {manifest.backup_id} is not a complete physical base backup")
    if not manifest.ok:
        raise incomplete
    by_name = {record.name: record for record in manifest.objects}
    oids = [str(space.get("oid")) for space in manifest.source.metadata.get("tablespaces") or []]
    if BASE_TAR not in by_name or set(by_name) - {BASE_TAR, MANIFEST_FILE, *(f"{oid}.tar" for oid in oids)}:
        raise incomplete
    spaces = {oid: by_name[f"{oid}.tar"] for oid in oids if f"{oid}.tar" in by_name}
    if len(spaces) != len(oids) or len(manifest.objects) != len(by_name):
        raise incomplete
    extra = [by_name[MANIFEST_FILE]] if MANIFEST_FILE in by_name else []
    return by_name[BASE_TAR], spaces, extra


def _tablespace_places(
    manifest: Manifest, oids: Mapping[str, ObjectRecord], mapping: Mapping[str, str]
) -> dict[str, Path]:
    """Where each tablespace (by oid) goes: its original location unless ``mapping`` moves it."""
    spaces = manifest.source.metadata.get("tablespaces") or []
    original = {str(space["oid"]): str(space["location"]) for space in spaces if str(space.get("oid")) in oids}
    unknown = sorted(set(mapping) - set(original.values()))
    if unknown:
        known = ", ".join(sorted(original.values())) or "none"
        raise ConfigError(
            f"--tablespace-map names {', '.join(unknown)}, which is no tablespace location of backup "
            f"{manifest.backup_id} (its tablespaces: {known})"
        )
    places: dict[str, Path] = {}
    for oid, location in original.items():
        place = mapping.get(location, location)
        if not os.path.isabs(place):
            raise ConfigError(f"a tablespace location must be an absolute path, not {place!r}")
        places[oid] = Path(os.path.normpath(place))
    if len(set(places.values())) != len(places):
        raise ConfigError("two tablespaces would be restored into the same directory")
    return places


def _write_tablespace_map(data_dir: Path, places: Mapping[str, Path]) -> None:
    """Point the restored ``tablespace_map`` (``<oid> <path>`` lines, which the server turns into the
    links in pg_tblspc when it starts) at where the tablespaces were restored; lines of tablespaces
    that live inside the data directory (in-place ones) stay as they are."""
    path = data_dir / "tablespace_map"
    if not path.is_file():
        raise SourceError("the base backup has tablespaces but its base.tar holds no tablespace_map file")
    entries = parse_tablespace_map(path.read_bytes())
    listed = {oid for oid, _ in entries}
    if not set(places) <= listed:
        raise SourceError(f"the base backup's tablespace_map lists {sorted(listed)}, its manifest {sorted(places)}")
    path.write_bytes(
        format_tablespace_map([(oid, os.fsencode(places[oid]) if oid in places else old) for oid, old in entries])
    )


async def _write_file(chunks: AsyncIterator[bytes], path: Path) -> None:
    with await anyio.to_thread.run_sync(path.open, "wb") as out:
        async for chunk in chunks:
            await anyio.to_thread.run_sync(out.write, chunk)


def _prepare_dir(data_dir: Path, owner: pwd.struct_passwd | None, what: str = "") -> bool:
    """An empty directory with mode 0700 owned by the server's user; True if we created it."""
    created = False
    label = f"{what} {data_dir}" if what else str(data_dir)
    if data_dir.exists():
        if not data_dir.is_dir():
            raise ConfigError(f"{label} exists and is not a directory")
        if any(data_dir.iterdir()):
            hint = " (map it elsewhere with --tablespace-map OLD=NEW)" if what == "tablespace directory" else ""
            raise ConfigError(f"{label} is not empty; restore into an empty or new directory{hint}")
    else:
        data_dir.mkdir(parents=True, mode=0o700)
        created = True
    os.chmod(data_dir, 0o700)
    if owner is not None:
        os.chown(data_dir, owner.pw_uid, owner.pw_gid)
    return created


def _clear(data_dir: Path, *, remove_dir: bool) -> None:
    if remove_dir:
        shutil.rmtree(data_dir, ignore_errors=True)
        return
    for child in data_dir.iterdir() if data_dir.is_dir() else ():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for directory, dirnames, filenames in os.walk(root):
        os.chown(directory, uid, gid)
        for name in dirnames + filenames:
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)


class _QueueReader:
    """A file object for ``tarfile`` fed from the event loop through a bounded queue."""

    def __init__(self, feed: queue.Queue[bytes | None]) -> None:
        self._feed = feed
        self._buffer = b""
        self._eof = False

    def read(self, size: int = -1) -> bytes:
        while not self._eof and (size < 0 or len(self._buffer) < size):
            chunk = self._feed.get()
            if chunk is None:
                self._eof = True
            else:
                self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def drain(self) -> None:
        while not self._eof:
            if self._feed.get() is None:
                self._eof = True


async def _extract(chunks: AsyncIterator[bytes], data_dir: Path) -> None:
    """Untar ``chunks`` into ``data_dir`` in a worker thread; the whole stream is consumed (and so verified)."""
    feed: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
    reader = _QueueReader(feed)
    failure: list[BaseException] = []
    finished = threading.Event()

    def work() -> None:
        try:
            with tarfile.open(fileobj=reader, mode="r|") as archive:  # type: ignore[call-overload]
                for member in archive:
                    extract_member(archive, member, data_dir)
        except BaseException as exc:  # reported on the event loop
            failure.append(exc)
        finally:
            finished.set()
            reader.drain()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.to_thread.run_sync, work)
            try:
                async for chunk in chunks:
                    await anyio.to_thread.run_sync(feed.put, chunk)
            finally:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(feed.put, None)
    except BaseExceptionGroup as group:  # a corrupt or unreadable object: its own error, in one line
        raise primary_error(group) from None
    if failure:
        exc = failure[0]
        if isinstance(exc, tarfile.TarError | OSError):
            raise SourceError(f"cannot extract the base backup into {data_dir}: {exc}") from exc
        raise exc


def _conf_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _write_recovery(
    data_dir: Path,
    manifest: Manifest,
    wal: WalConfig,
    target: RecoveryTarget,
    port: int | None,
    keys: KeyOptions | None,
) -> None:
    """recovery.signal, the wal-fetch config file and the recovery settings in postgresql.auto.conf."""
    if keys is not None and keys.provider_options:
        wal = WalConfig(**{**wal.__dict__, "provider_options": {**wal.provider_options, **keys.provider_options}})
    config_file = data_dir / WAL_CONFIG_NAME
    config_file.write_text(wal.to_toml())
    os.chmod(config_file, 0o600)
    command = f"{shlex.quote(backstream_executable())} wal-fetch --config {shlex.quote(str(config_file))} %f %p"
    settings = {
        "restore_command": command.replace("%", "%%").replace("%%f", "%f").replace("%%p", "%p"),
        "archive_mode": "off",
        **target.settings(),
    }
    if port is not None:
        settings["port"] = str(port)
    lines = [f"\n# backstream restore of {manifest.backup_id} to {target.describe} (remove after recovery)"]
    lines += [f"{key} = {_conf_quote(value)}" for key, value in settings.items()]
    with (data_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write("\n".join(lines) + "\n")
    (data_dir / "recovery.signal").touch()
    for stale in ("postmaster.pid", "postmaster.opts"):
        (data_dir / stale).unlink(missing_ok=True)


# --- starting the server -------------------------------------------------------------------------


def server_bindir(given: str | None, manifest: Manifest) -> Path:
    """The server binaries for ``manifest``'s major version: ``given``, Debian's directory, or PATH's."""
    if given:
        return Path(given)
    version = str(manifest.source.server_version or manifest.source.metadata.get("server_version") or "")
    major = version.split(".")[0].split()[0] if version else ""
    debian = Path(f"/usr/lib/postgresql/{major}/bin")
    if major and (debian / "pg_ctl").is_file():
        return debian
    found = shutil.which("pg_ctl")
    if found is None:
        raise ConfigError("cannot find pg_ctl; pass --pg-bindir DIR (the PostgreSQL server binaries)")
    return Path(found).parent


def _as_user(argv: list[str], owner: pwd.struct_passwd | None) -> list[str]:
    return ["runuser", "-u", owner.pw_name, "--", *argv] if owner is not None else argv


def _cluster_state(bindir: Path, data_dir: Path, owner: pwd.struct_passwd | None) -> str:
    result = subprocess.run(
        _as_user([str(bindir / "pg_controldata"), str(data_dir)], owner),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LC_ALL": "C"},  # the English field names: a translated one would never match
    )
    for line in result.stdout.splitlines():
        if line.startswith("Database cluster state:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _running(bindir: Path, data_dir: Path, owner: pwd.struct_passwd | None) -> bool:
    result = subprocess.run(
        _as_user([str(bindir / "pg_ctl"), "status", "-D", str(data_dir)], owner), capture_output=True, check=False
    )
    return result.returncode == 0


def _log_tail(data_dir: Path) -> str:
    try:
        lines = (data_dir / SERVER_LOG_NAME).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    wanted = [line for line in lines if "FATAL" in line or "PANIC" in line or "LOG:  last completed" in line]
    return " | ".join(wanted[-3:])


async def _start_and_wait(
    data_dir: Path,
    bindir: Path,
    port: int | None,
    owner: pwd.struct_passwd | None,
    target: RecoveryTarget,
    timeout: float,
    storage: Any,
    manifest: Manifest,
) -> str:
    log_file = data_dir / SERVER_LOG_NAME
    argv = [str(bindir / "pg_ctl"), "start", "-D", str(data_dir), "-l", str(log_file), "-w", "-t", str(int(timeout))]
    if port is not None:
        argv += ["-o", f"-p {port}"]
    started = await anyio.run_process(_as_user(argv, owner), check=False)
    deadline = time.monotonic() + timeout
    while True:
        # Running first: a base backup's own pg_control already says "in production", so a server
        # that died at start-up (a restore_command it cannot run, say) would look promoted.
        if started.returncode != 0 or not await anyio.to_thread.run_sync(_running, bindir, data_dir, owner):
            raise SourceError(await _stopped_message(data_dir, target, storage, manifest))
        state = await anyio.to_thread.run_sync(_cluster_state, bindir, data_dir, owner)
        if state == "in production" and not (data_dir / "recovery.signal").exists():
            return "promoted"  # the server removes recovery.signal when recovery ends and it promotes
        if not target.settings():
            return "in recovery"  # no target: it keeps replaying (and waits for more WAL) until promoted
        if time.monotonic() > deadline:
            raise SourceError(f"recovery did not reach {target.describe} within {timeout:.0f} s; see {log_file}")
        await anyio.sleep(0.2)


async def _stopped_message(data_dir: Path, target: RecoveryTarget, storage: Any, manifest: Manifest) -> str:
    detail = _log_tail(data_dir)
    gap = await first_gap(storage, manifest)
    where = f"; see {data_dir / SERVER_LOG_NAME}" + (f" [{detail}]" if detail else "")
    if gap is not None:
        missing, later = gap
        why = "later segments exist, so the archive has a hole" if later else "no WAL from there on is archived"
        stopped = f"recovery stopped before {target.describe}"
        return f"{stopped}: WAL segment {missing} is missing from the archive ({why}){where}"
    return (
        f"the restored server stopped before reaching {target.describe}: {detail or 'no FATAL line in its log'}{where}"
    )


async def first_gap(storage: Any, manifest: Manifest) -> tuple[str, bool] | None:
    """The first WAL segment the base backup needs that is missing from the archive, and whether
    later segments of its timeline are there (a hole) or not (the archive ends before it)."""
    return backup_gap(await archived_names(storage, with_objects=True), manifest)
