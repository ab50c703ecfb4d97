"""Per-table row counts and content checksums read from the COPY blocks of a plain pg_dump stream.

Fed chunk by chunk as the dump passes through: one sha256 pass over the table data, no second
read of the database, and the figures describe exactly the rows the backup holds.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

CHECKSUM_METHOD = "copy-sha256"
"""Prefix of checksums made here: sha256 of a table's COPY text as pg_dump writes it."""

_IDENT = rb'(?:"(?:[^"]|"")*"|[^\s".(]+)'
_HEADER = re.compile(rb"COPY (" + _IDENT + rb")\.(" + _IDENT + rb") (?:\(.*\))? FROM stdin;\Z")
_END = b"\n\\.\n"
"""A COPY block ends with a line holding only ``\\.`` (a row cannot: backslashes are doubled)."""


MAX_HEADER = 1024 * 1024
"""Longer lines outside COPY data are skipped without being kept (a header is far shorter)."""


def _unquote(ident: bytes) -> str:
    text = ident.decode("utf-8", "surrogateescape")
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text


class CopyContent:
    """Watches a plain-format dump: ``feed`` every chunk in order, then read ``tables`` (or use it
    as a pass-through codec that publishes them into ``into`` when it finishes).

    A table's data is taken as the bytes between its ``COPY ... FROM stdin;`` line and the
    terminating ``\\.`` line, with the header's newline in front, so an empty table hashes one
    newline. Rows are the data's lines. ``checksums=False`` only counts rows.
    """

    def __init__(self, *, checksums: bool = True, into: dict[str, dict[str, Any]] | None = None) -> None:
        self._checksums = checksums
        self._into = into
        self.tables: dict[str, dict[str, Any]] = {}
        self._pending = b""  # outside COPY data: the current line so far
        self._skipping = False  # outside COPY data: inside a line too long to be a COPY header
        self._table: str | None = None  # inside COPY data: whose
        self._held = b""  # inside COPY data: the last bytes seen, not yet counted (a terminator may start there)
        self._hash: Any = None
        self._newlines = 0

    def update(self, chunk: bytes) -> bytes:
        """As a pass-through codec in a pipeline: watch ``chunk`` and hand it on unchanged."""
        self.feed(chunk)
        return chunk

    def finish(self) -> bytes:
        """At the end of the stream, publish the figures into ``into`` (if the stream was whole)."""
        if self._into is not None and self.complete:
            self._into.update(self.tables)
        return b""

    def feed(self, chunk: bytes) -> None:
        data = chunk
        while data:
            data = self._in_copy(data) if self._table is not None else self._outside(data)

    def _outside(self, chunk: bytes) -> bytes:
        """Look for the next COPY header; return the data after it (empty when there is none)."""
        if self._skipping:  # the rest of an over-long line, which cannot be a COPY header
            end = chunk.find(b"\n")
            if end < 0:
                return b""
            self._skipping = False
            chunk = chunk[end + 1 :]
        text = self._pending + chunk if self._pending else chunk  # starts at a line start
        start = 0
        while True:
            if text.startswith(b"COPY ", start):
                at = start
            else:
                found = text.find(b"\nCOPY ", start)
                if found < 0:
                    self._keep_partial_line(text[text.rfind(b"\n") + 1 :])
                    return b""
                at = found + 1
            end = text.find(b"\n", at)
            if end < 0:
                self._keep_partial_line(text[at:])
                return b""
            match = _HEADER.match(text, at, end)
            if match is not None:
                self._pending = b""
                self._begin(_unquote(match.group(1)) + "." + _unquote(match.group(2)))
                return text[end + 1 :]
            start = end + 1

    def _keep_partial_line(self, line: bytes) -> None:
        if len(line) > MAX_HEADER:
            self._pending, self._skipping = b"", True
        else:
            self._pending = line

    def _begin(self, table: str) -> None:
        self._table = table
        self._held = b"\n"  # the header's newline: makes the terminator search uniform
        self._hash = hashlib.sha256() if self._checksums else None
        self._newlines = 0

    def _in_copy(self, chunk: bytes) -> bytes:
        """Account table data; return what follows its terminator (empty when it has not come)."""
        held = self._held
        if len(chunk) < len(_END):
            return self._in_copy_joined(held + chunk)
        # A terminator that starts in the held bytes ends within the first 3 bytes of the chunk.
        end = (held + chunk[: len(_END) - 1]).find(_END)
        if 0 <= end < len(held):
            self._account(held, end + 1)
            self._end_table()
            return chunk[end + len(_END) - len(held) :]
        self._account(held, len(held))
        end = chunk.find(_END)
        if end >= 0:
            self._account(chunk, end + 1)
            self._end_table()
            return chunk[end + len(_END) :]
        keep = len(_END) - 1
        self._account(chunk, len(chunk) - keep)
        self._held = chunk[-keep:]
        return b""

    def _in_copy_joined(self, text: bytes) -> bytes:
        end = text.find(_END)
        if end >= 0:
            self._account(text, end + 1)
            self._end_table()
            return text[end + len(_END) :]
        keep = min(len(text), len(_END) - 1)
        self._account(text, len(text) - keep)
        self._held = text[len(text) - keep :]
        return b""

    def _end_table(self) -> None:
        assert self._table is not None
        entry: dict[str, Any] = {"rows": self._newlines - 1}
        if self._hash is not None:
            entry["checksum"] = f"{CHECKSUM_METHOD}:{self._hash.hexdigest()}"
        self.tables[self._table] = entry
        self._table, self._held, self._hash = None, b"", None

    def _account(self, text: bytes, upto: int) -> None:
        if upto <= 0:
            return
        self._newlines += text.count(b"\n", 0, upto)
        if self._hash is not None:
            self._hash.update(memoryview(text)[:upto])

    @property
    def complete(self) -> bool:
        """True when the stream did not stop inside a COPY block."""
        return self._table is None
