"""Passwords for the MySQL/MariaDB command-line tools, passed in a private option file.

Never on the command line (visible in ps) and never in the environment: a 0600 file, removed after use.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread


def option_file_text(password: str) -> str:
    """A ``[client]`` section setting ``password``, escaped as the tools' option-file parser expects."""
    escaped = (
        password.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'[client]\npassword="{escaped}"\n'


def _write(password: str) -> str:
    fd, path = tempfile.mkstemp(prefix="backstream-mysql-", suffix=".cnf")  # mode 0600
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(option_file_text(password))
    return path


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@asynccontextmanager
async def mysql_password_args(password: str | None) -> AsyncIterator[list[str]]:
    """``["--defaults-extra-file=PATH"]`` (it must be a tool's first argument) naming a 0600 file
    with the password, deleted afterwards even on cancellation; ``[]`` when there is no password."""
    if password is None:
        yield []
        return
    path = await anyio.to_thread.run_sync(_write, password)
    try:
        yield [f"--defaults-extra-file={path}"]
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_remove, path)
