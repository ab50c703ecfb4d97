"""The MySQL/MariaDB password option file: private, escaped, and gone after use.

The source plugin's tests show real tools read it (an awkward password logs in over TCP).
"""

from __future__ import annotations

import os
import stat

import anyio
from backstream_plugins.mysql.optionfile import mysql_password_args, option_file_text


def test_the_file_is_private_holds_the_escaped_password_and_is_removed_afterwards() -> None:
    seen: dict[str, object] = {}

    async def main() -> None:
        async with mysql_password_args('pa"ss\\word') as args:
            (arg,) = args
            path = arg.removeprefix("--defaults-extra-file=")
            seen["mode"] = stat.S_IMODE(os.stat(path).st_mode)
            seen["text"] = open(path, encoding="utf-8").read()
            seen["path"] = path

    anyio.run(main)
    assert seen["mode"] == 0o600
    assert seen["text"] == option_file_text('pa"ss\\word') == '[client]\npassword="pa\\"ss\\\\word"\n'
    assert not os.path.exists(str(seen["path"]))


def test_no_password_means_no_arguments() -> None:
    async def main() -> list[str]:
        async with mysql_password_args(None) as args:
            return args

    assert anyio.run(main) == []
