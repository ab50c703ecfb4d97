"""PostgreSQL's ``tablespace_map`` file: one ``<oid> <path>`` line per tablespace of a base backup.

PostgreSQL writes a backslash before every ``\\``, newline and carriage return in a path, and reads
it back the same way (``do_pg_backup_start`` / ``read_tablespace_map``); these functions do both.
"""

from __future__ import annotations

from backstream import SourceError


def parse_tablespace_map(data: bytes) -> list[tuple[str, bytes]]:
    """``(oid, path)`` pairs in file order, the paths with PostgreSQL's escapes removed."""
    entries: list[tuple[str, bytes]] = []
    line = bytearray()
    escaped = False

    def end_line() -> None:
        if not line:
            return  # a blank line, or the \n of a \r\n
        oid, space, path = bytes(line).partition(b" ")
        if not space or not oid.isdigit() or not path:
            raise SourceError(f"the base backup's tablespace_map has a malformed line: {bytes(line)[:200]!r}")
        entries.append((oid.decode("ascii"), path))
        line.clear()

    for byte in data:
        if escaped:
            line.append(byte)
            escaped = False
        elif byte == 0x5C:  # backslash
            escaped = True
        elif byte in (0x0A, 0x0D):
            end_line()
        else:
            line.append(byte)
    end_line()
    return entries


def format_tablespace_map(entries: list[tuple[str, bytes]]) -> bytes:
    """The file for ``(oid, path)`` pairs, escaped as PostgreSQL writes it."""
    out = bytearray()
    for oid, path in entries:
        out += oid.encode("ascii") + b" "
        for byte in path:
            if byte in (0x5C, 0x0A, 0x0D):
                out.append(0x5C)
            out.append(byte)
        out += b"\n"
    return bytes(out)
