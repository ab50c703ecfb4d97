"""The MySQL/MariaDB client tools binlog archiving and replay run (``mariadb-binlog``, ``mariadb``).

Passwords reach the command-line tools only through a 0600 option file that is removed afterwards.
"""

from __future__ import annotations

import shutil

from backstream import SourceError

BINLOG_TOOLS = ("mariadb-binlog", "mysqlbinlog")
CLIENT_TOOLS = ("mariadb", "mysql")


def find_tool(candidates: tuple[str, ...]) -> str:
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    raise SourceError(
        f"{' or '.join(candidates)} not found on PATH; install the MariaDB or MySQL client tools "
        "(Debian: apt-get install mariadb-client)"
    )


def tail_lines(data: bytes, count: int = 4) -> str:
    text = data[-16384:].decode("utf-8", "replace")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("---")]
    errors = [line for line in lines if line.startswith("ERROR")]
    return "; ".join((errors or lines)[-count:])
