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


CLIENT_GROUPS = frozenset({"client", "client-mariadb"})
"""The option-file groups every MySQL/MariaDB client reads (``[client]``; MariaDB's ``[client-mariadb]``)."""

_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "r": "\r", "s": " ", "\\": "\\", '"': '"', "'": "'"}


def client_password(text: str) -> str | None:
    """The ``password`` of the client groups in option-file ``text``, read as the client tools read it
    (quotes, backslash escapes, ``#`` comments; the last setting wins); None when none is set.

    pymysql's own ``read_default_file`` strips quotes but keeps escapes, so a password written for
    ``mysqldump`` would not work for pymysql: backstream reads the file itself.
    """
    group = ""
    found: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;!":
            continue
        if line.startswith("[") and "]" in line:
            group = line[1 : line.index("]")].strip().lower()
            continue
        if group not in CLIENT_GROUPS:
            continue
        key, sep, value = line.partition("=")
        if key.strip().replace("_", "-").lower() == "password":
            found = _option_value(value) if sep else ""
    return found


def _option_value(value: str) -> str:
    value = value.strip()
    quote = value[0] if value and value[0] in "'\"" else ""
    out: list[str] = []
    index = 1 if quote else 0
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value):
            following = value[index + 1]
            out.append(_ESCAPES.get(following, "\\" + following))
            index += 2
            continue
        if quote and char == quote:
            break
        if not quote and char == "#":
            break
        out.append(char)
        index += 1
    return "".join(out) if quote else "".join(out).rstrip()


def my_cnf_password(home: str | None = None) -> str | None:
    """The client password in ``~/.my.cnf`` (None: no file, or no password in it). Blocking."""
    path = os.path.join(home or os.path.expanduser("~"), ".my.cnf")
    try:
        with open(path, encoding="utf-8") as handle:
            return client_password(handle.read())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return None  # unreadable: the server will say the password is wrong, naming the user
