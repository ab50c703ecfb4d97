"""The ``backstream`` command line a scheduled job runs in its child process, and what its output says.

Each kind is an existing command (``backup``, ``verify``, ``check``, ``prune``, ``verify-pitr``) run
with ``--json``; the backup id and bytes come from that JSON, the error from its one-line message.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from backstream.retention import Policy, format_duration
from backstream.schedule.config import JobSpec

KEY_FLAGS = {"passphrase_file": "--passphrase-file", "keystore": "--keystore", "audit_log": "--audit-log"}
KEY_KINDS = frozenset({"backup", "verify", "check"})
"""Kinds whose command takes the key options (the others read no encrypted data)."""
ERROR_PREFIX = "backstream: error: "
CLI = (sys.executable, "-m", "backstream.cli.main")
"""How a child runs ``backstream``: this interpreter and the command line's module (the one the
``backstream`` script calls), so a child uses exactly the daemon's installation."""


def child_command(job: JobSpec) -> list[str]:
    """The child process's argv: this interpreter running ``backstream`` with the job's command."""
    return [*CLI, *command_args(job)]


def command_args(job: JobSpec) -> list[str]:
    """The ``backstream`` arguments that run ``job`` once."""
    options = job.options
    repo = ["--repo", job.repository]
    args: list[str]
    if job.kind == "backup":
        args = ["backup", str(options["source"]), *repo]
        if "compress" in options:
            args += ["--compress", str(options["compress"])]
        if "cipher" in options:
            args += ["--cipher", str(options["cipher"])]
        for ref in options.get("encrypt", []):
            args += ["--encrypt", str(ref)]
        if "format" in options:
            args += ["--format", str(options["format"])]
        if "jobs" in options:
            args += ["--jobs", str(options["jobs"])]
        if "catalog" in options:
            args += ["--catalog", str(options["catalog"])]
        for key, value in options.get("source_options", {}).items():
            args += ["--option", f"{key}={value}"]
    elif job.kind == "verify":
        args = ["verify", str(options["backup"]), *repo, "--level", str(options["level"])]
        if "scratch" in options:
            args += ["--scratch", str(options["scratch"])]
    elif job.kind == "check":
        args = ["check", *repo, *(["--read-data"] if options.get("read_data") else [])]
    elif job.kind == "prune":
        assert job.retention is not None  # validated: a prune job has one
        args = ["prune", *repo, *retention_args(job.retention)]
    elif job.kind == "verify-pitr":
        args = ["verify-pitr", str(options["source"]), *repo]
        if "wait" in options:
            args += ["--timeout", f"{float(options['wait']):g}"]
    else:  # pragma: no cover - the config accepts only KINDS
        raise AssertionError(job.kind)
    for key, value in job.storage_options.items():
        args += ["--storage-option", f"{key}={value}"]
    if job.kind in KEY_KINDS:
        for key, value in job.key_options.items():
            args += [KEY_FLAGS[key], value]
    return [*args, "--json"]


def retention_args(policy: Policy) -> list[str]:
    """``prune`` options for ``policy`` (``--keep-daily 7 ...``)."""
    args: list[str] = []
    if policy.keep_last is not None:
        args += ["--keep-last", str(policy.keep_last)]
    if policy.keep_within is not None:
        args += ["--keep-within", format_duration(policy.keep_within)]
    for rule in ("hourly", "daily", "weekly", "monthly", "yearly"):
        value = getattr(policy, rule)
        if value is not None:
            args += [f"--keep-{rule}", str(value)]
    return args


def prune_command(job: JobSpec) -> list[str]:
    """The child argv that applies a backup job's ``retention`` after a successful backup."""
    assert job.retention is not None
    args = ["prune", "--repo", job.repository, *retention_args(job.retention)]
    for key, value in job.storage_options.items():
        args += ["--storage-option", f"{key}={value}"]
    return [*CLI, *args, "--json"]


@dataclass(frozen=True)
class Outcome:
    """What one child process's output says: its backup id and stored bytes (a backup), else None."""

    backup_id: str | None = None
    bytes: int | None = None


def parse_output(kind: str, stdout: bytes) -> Outcome:
    """The backup id and size from a command's ``--json`` output (nothing when it is not JSON)."""
    try:
        document: Any = json.loads(stdout.decode("utf-8", errors="replace") or "null")
    except ValueError:
        return Outcome()
    if not isinstance(document, dict):
        return Outcome()
    if kind == "backup":
        size = document.get("stored_size")
        return Outcome(_str(document.get("backup_id")), size if isinstance(size, int) else None)
    if kind == "verify":
        backup = document.get("backup")
        backup_id = document.get("backup_id") or (backup.get("backup_id") if isinstance(backup, dict) else None)
        return Outcome(_str(backup_id))
    return Outcome()


def error_line(stderr: bytes, returncode: int) -> str:
    """The child's one-line error (``backstream: error: ...`` without the prefix), else its last
    line, else its exit status."""
    lines = [line.strip() for line in stderr.decode("utf-8", errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX) :]
    if lines:
        return lines[-1][:500]
    return f"exited with status {returncode}" if returncode >= 0 else f"killed by signal {-returncode}"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
