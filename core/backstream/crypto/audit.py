"""The key audit log: one JSON line per key operation (create, wrap, unwrap, rotate), never key material.

Location: ``$BACKSTREAM_AUDIT_LOG``, else ``$XDG_STATE_HOME/backstream/audit.log`` (``~/.local/state``).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import socket
from pathlib import Path
from typing import Any

import anyio.to_thread

from backstream.errors import ConfigError
from backstream.version import __version__

AUDIT_ENV = "BACKSTREAM_AUDIT_LOG"
DISABLED = "off"


def default_audit_path() -> Path | None:
    """The audit log path from the environment (None when ``BACKSTREAM_AUDIT_LOG=off``)."""
    configured = os.environ.get(AUDIT_ENV, "").strip()
    if configured.lower() == DISABLED:
        return None
    if configured:
        return Path(configured).expanduser()
    state = os.environ.get("XDG_STATE_HOME", "").strip() or str(Path("~/.local/state").expanduser())
    return Path(state) / "backstream" / "audit.log"


class AuditLog:
    """Appends audit records to one file (created 0600, parent directories as needed).

    ``AuditLog()`` uses the environment's location; ``AuditLog(path)`` a fixed one;
    ``AuditLog(None)`` with ``enabled=False`` records nothing. A record that cannot be written
    raises ConfigError, so no key operation happens unaudited."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, enabled: bool = True) -> None:
        if not enabled:
            self.path: Path | None = None
        elif path is None:
            self.path = default_audit_path()
        else:
            self.path = Path(path).expanduser()

    def record_sync(self, op: str, **fields: Any) -> None:
        """Append one record now (blocking file I/O)."""
        if self.path is None:
            return
        entry: dict[str, Any] = {
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "op": op,
            "user": _user(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "tool": f"backstream {__version__}",
        }
        entry.update({key: value for key, value in fields.items() if value not in (None, "")})
        line = json.dumps(entry, sort_keys=False, ensure_ascii=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(descriptor, line.encode("utf-8"))
            finally:
                os.close(descriptor)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the key audit log {self.path}: {exc.strerror or exc} "
                f"(set {AUDIT_ENV} to a writable file, or to 'off')"
            ) from exc

    async def record(self, op: str, **fields: Any) -> None:
        """Append one record from async code (the write runs in a worker thread)."""
        if self.path is None:
            return
        await anyio.to_thread.run_sync(lambda: self.record_sync(op, **fields))


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
