"""The throwaway PostgreSQL server of a physical backup's restore drill.

A scratch directory (mode 0700, owned by the account that runs the server) holds the data
directory and the tablespaces; a private socket directory is made in /tmp (a socket's path must be
short, whatever the scratch directory's). The drill's settings keep the server to
itself: no archiving, no replication, a free loopback port whose TCP connections are all refused,
and password-less connections only over the private socket. On leaving, whatever happened
(failure, Ctrl-C, SIGTERM), the server is stopped (``-m immediate``) and the directory removed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import anyio
import anyio.to_thread
from backstream import ConfigError

from backstream_plugins.postgresql.restore_dir import server_user

MAX_SOCKET_PATH = 100
"""A unix socket path is at most 107 bytes; the server adds ``/.s.PGSQL.<port>``."""
DRILL_HBA = "# backstream restore drill: the private socket only\nlocal all all trust\n"
DRILL_SIGNALS = ("standby.signal",)
"""Removed before the start: the drill recovers from the repository, never from a primary."""


@dataclass
class ScratchCluster:
    """Where the drill's server lives, how to reach it, and (once chosen) its binaries."""

    root: Path
    socket_dir: Path
    owner: pwd.struct_passwd | None
    port: int
    bindir: Path | None = None
    started: bool = False  # a start was tried: a server may run
    starting: bool = False  # and was interrupted: it may still be coming up

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def tablespace_dir(self, oid: str) -> Path:
        return self.root / "tablespaces" / oid

    def conninfo(self, dbname: str, user: str) -> dict[str, str]:
        return {"host": str(self.socket_dir), "port": str(self.port), "user": user, "dbname": dbname}

    def url(self, dbname: str, user: str) -> str:
        """``postgresql://user@/dbname?host=<socket dir>&port=N``."""
        query = urlencode({"host": str(self.socket_dir), "port": str(self.port)})
        return f"postgresql://{quote(user, safe='')}@/{quote(dbname, safe='')}?{query}"

    def settings(self) -> dict[str, str]:
        """What the drill sets in postgresql.auto.conf, after (and so above) the backup's own settings."""
        return {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "unix_socket_permissions": "0700",
            "hba_file": str(self.root / "pg_hba.conf"),
            "ident_file": str(self.root / "pg_ident.conf"),
            "external_pid_file": "",
            "ssl": "off",
            "hot_standby": "off",
            "archive_mode": "off",
            "primary_conninfo": "",
            "primary_slot_name": "",
            "logging_collector": "off",
            "log_destination": "stderr",
            "shared_buffers": "128MB",
            "huge_pages": "try",
            "cluster_name": "backstream-drill",
        }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def scratch_cluster(parent: str | None = None) -> AsyncIterator[ScratchCluster]:
    """A new scratch directory under ``parent`` (default: the temporary directory); on exit the
    server started in it is stopped and the directory removed, also when cancelled."""
    owner = server_user()
    where = parent or tempfile.gettempdir()
    try:
        made = await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix="backstream-drill-", dir=where))
    except OSError as exc:
        raise ConfigError(f"cannot make a scratch directory in {where}: {exc.strerror or exc}") from exc
    root = Path(made).absolute()
    cluster = ScratchCluster(root, root, owner, free_port())  # its socket directory follows
    try:
        sockets = "/tmp" if os.path.isdir("/tmp") else None
        cluster.socket_dir = Path(tempfile.mkdtemp(prefix="backstream-sock-", dir=sockets)).absolute()
        _prepare(cluster)
        yield cluster
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(remove, cluster)


def _prepare(cluster: ScratchCluster) -> None:
    if len(str(cluster.socket_dir)) + len("/.s.PGSQL.65535") > MAX_SOCKET_PATH:
        raise ConfigError(f"the temporary directory {cluster.socket_dir.parent} is too deep for a unix socket")
    os.chmod(cluster.root, 0o700)
    os.chmod(cluster.socket_dir, 0o700)
    (cluster.root / "pg_hba.conf").write_text(DRILL_HBA)
    (cluster.root / "pg_ident.conf").write_text("")
    (cluster.root / "tablespaces").mkdir(mode=0o700)
    if cluster.owner is not None:
        _check_reachable(cluster.root, cluster.owner)
        for path in (cluster.socket_dir, *(cluster.root / name for name in ("", "pg_hba.conf", "pg_ident.conf"))):
            os.chown(path, cluster.owner.pw_uid, cluster.owner.pw_gid)
        os.chown(cluster.root / "tablespaces", cluster.owner.pw_uid, cluster.owner.pw_gid)


def _check_reachable(root: Path, owner: pwd.struct_passwd) -> None:
    """The server's account must be able to enter every directory above ``root``."""
    groups = set(os.getgrouplist(owner.pw_name, owner.pw_gid))
    for directory in root.parents:
        mode = directory.stat()
        if mode.st_uid == owner.pw_uid:
            allowed = mode.st_mode & 0o100
        elif mode.st_gid in groups:
            allowed = mode.st_mode & 0o010
        else:
            allowed = mode.st_mode & 0o001
        if not allowed:
            raise ConfigError(
                f"the {owner.pw_name} user, which runs the drill's server, cannot enter {directory}; "
                "pass --scratch DIR, a directory it can reach"
            )


def link_tablespaces(cluster: ScratchCluster, places: Mapping[str, Path]) -> None:
    """The links in pg_tblspc to the restored tablespaces, which the server would make from
    tablespace_map when it starts (and makes again then): pg_verifybackup follows them."""
    for oid, place in places.items():
        link = cluster.data_dir / "pg_tblspc" / oid
        if not link.is_symlink():
            link.parent.mkdir(exist_ok=True)
            link.symlink_to(place)
            if cluster.owner is not None:
                os.lchown(link, cluster.owner.pw_uid, cluster.owner.pw_gid)


def configure(cluster: ScratchCluster) -> None:
    """Make the restored data directory start as the drill's server: its settings last in
    postgresql.auto.conf, and a postgresql.conf where the backup had none (its configuration
    lived elsewhere, as on Debian) with the data directory named last."""
    data = cluster.data_dir
    conf = data / "postgresql.conf"
    with conf.open("a") as out:  # last wins: no data_directory of the backup's may point elsewhere
        out.write(f"\n# backstream restore drill\ndata_directory = {_quote(str(data))}\n")
    lines = [f"{key} = {_quote(value)}" for key, value in cluster.settings().items()]
    with (data / "postgresql.auto.conf").open("a") as out:
        out.write("\n# backstream restore drill (a throwaway server)\n" + "\n".join(lines) + "\n")
    for name in DRILL_SIGNALS:
        (data / name).unlink(missing_ok=True)
    if cluster.owner is not None:
        for path in (conf, data / "postgresql.auto.conf"):
            os.chown(path, cluster.owner.pw_uid, cluster.owner.pw_gid)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _as_owner(cluster: ScratchCluster, argv: list[str]) -> list[str]:
    return ["runuser", "-u", cluster.owner.pw_name, "--", *argv] if cluster.owner is not None else argv


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _ours(pid: int, data: Path) -> bool:
    """True when ``pid`` is a live process working in ``data`` (a postmaster chdirs there):
    never a process that merely got the pid of a postmaster gone long ago."""
    try:
        return os.path.samefile(f"/proc/{pid}/cwd", data)
    except OSError:
        return False


def stop(cluster: ScratchCluster) -> None:
    """Stop the server of ``cluster`` (immediate shutdown) if one runs or is still starting: a
    start interrupted a moment ago may write its postmaster.pid only now (blocking)."""
    if not cluster.started:
        return
    data = cluster.data_dir
    if not Path("/proc/self/cwd").exists():  # no /proc: trust pg_ctl alone
        if (data / "postmaster.pid").exists():
            _pg_ctl_stop(cluster)
        return
    grace = 1.0 if cluster.starting else 0.0
    deadline = time.monotonic() + grace
    while True:
        pid = _postmaster_pid(data)
        if pid is not None and _ours(pid, data):
            _pg_ctl_stop(cluster)
            if _ours(pid, data):
                os.kill(pid, signal.SIGKILL)  # the postmaster; its children leave when they see it gone
                gone = time.monotonic() + 5.0
                while _ours(pid, data) and time.monotonic() < gone:
                    time.sleep(0.05)
            deadline = time.monotonic() + grace
        if time.monotonic() >= deadline:
            return
        time.sleep(0.1)


def _pg_ctl_stop(cluster: ScratchCluster) -> None:
    if cluster.bindir is None or not (cluster.bindir / "pg_ctl").is_file():
        return
    argv = [str(cluster.bindir / "pg_ctl"), "stop", "-D", str(cluster.data_dir), "-m", "immediate", "-w", "-t", "60"]
    subprocess.run(_as_owner(cluster, argv), capture_output=True, check=False, timeout=90)


def remove(cluster: ScratchCluster) -> None:
    """Stop the server and remove the scratch directory (blocking)."""
    try:
        stop(cluster)
    finally:
        shutil.rmtree(cluster.root, ignore_errors=True)
        shutil.rmtree(cluster.socket_dir, ignore_errors=True)
