"""Where passphrases come from: a file, an environment variable, or an interactive prompt.

Shared by the passphrase and keystore providers; blocking (prompt, file): call from a worker thread.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Sequence

from backstream.errors import ConfigError

PASSPHRASE_ENV = "BACKSTREAM_PASSPHRASE"


def read_passphrase(
    *,
    file: str | None = None,
    env: Sequence[str] = (PASSPHRASE_ENV,),
    prompt: str = "Passphrase: ",
    confirm: bool = False,
    interactive: bool | None = None,
) -> bytes:
    """The passphrase from ``file`` (first line), else the first set variable of ``env``, else a
    prompt on the terminal when stdin is a TTY (asked twice when ``confirm``).

    No source, an empty passphrase, or a mismatched confirmation raises ConfigError."""
    if file:
        try:
            with open(file, "rb") as handle:
                data = handle.read(64 * 1024 + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read passphrase file {file}: {exc.strerror or exc}") from exc
        passphrase = data.split(b"\n", 1)[0].removesuffix(b"\r")
        if not passphrase:
            raise ConfigError(f"passphrase file {file} is empty")
        return passphrase
    for name in env:
        value = os.environ.get(name)
        if value:
            return value.encode("utf-8")
    if interactive is None:
        interactive = _stdin_is_tty()
    if not interactive:
        names = " or ".join(env) if env else "an environment variable"
        raise ConfigError(f"no passphrase: set {names}, pass --passphrase-file, or run interactively")
    first = getpass.getpass(prompt)
    if not first:
        raise ConfigError("empty passphrase")
    if confirm and getpass.getpass("Confirm " + prompt[:1].lower() + prompt[1:]) != first:
        raise ConfigError("the passphrases do not match")
    return first.encode("utf-8")


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        return False
