"""A second benchmark database: Python source text in ~300-byte rows (issue 16's "realistic text").

``lines(id bigint, path text, lineno int, body text)``: the ``.py`` files of the interpreter's own
standard library (sorted, so the same machine gives the same bytes), cut into pieces of consecutive
lines of ~300 bytes; the corpus is cycled (each pass with a pass number in the path) until the COPY
text reaches the size asked for. ``copy_text(size)`` streams it in COPY text format, bounded memory.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator
from pathlib import Path

DDL = "CREATE TABLE lines (id bigint, path text, lineno int, body text);"
INDEXES = "ALTER TABLE lines ADD PRIMARY KEY (id); ANALYZE;"
TABLES = ("lines",)
ROW_BYTES = 300


def _corpus() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if "site-packages" not in p.parts)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def rows() -> Iterator[tuple[str, int, str]]:
    """(path, first line number, body of ~ROW_BYTES) forever."""
    files = _corpus()
    round_ = 0
    while True:
        for path in files:
            try:
                lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            except (OSError, UnicodeDecodeError):
                continue
            start, piece = 1, ""
            for number, line in enumerate(lines, 1):
                piece += line
                if len(piece) >= ROW_BYTES:
                    yield f"r{round_}/{path.name}", start, piece
                    start, piece = number + 1, ""
            if piece:
                yield f"r{round_}/{path.name}", start, piece
        round_ += 1


def copy_text(size: int) -> Iterator[bytes]:
    """``COPY lines FROM stdin`` text of about ``size`` bytes, then ``\\.``, in ~1 MiB pieces."""
    yield b"COPY lines (id, path, lineno, body) FROM stdin;\n"
    written, buffer, buffered = 0, [], 0
    for row_id, (path, lineno, body) in enumerate(rows(), 1):
        line = f"{row_id}\t{_escape(path)}\t{lineno}\t{_escape(body)}\n".encode()
        buffer.append(line)
        buffered += len(line)
        if buffered >= 2**20:
            yield b"".join(buffer)
            written += buffered
            buffer, buffered = [], 0
            if written >= size:
                break
    if buffer:
        yield b"".join(buffer)
    yield b"\\.\n"
