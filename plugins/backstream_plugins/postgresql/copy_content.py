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
_HEADER = re.compile(rb"COPY (" + _IDENT + rb")\.(" + _IDENT + rb") (?:\(.*\))? FROM stdin;\Z", re.DOTALL)
_DATA_COMMENT = b"-- Data for Name: "
_DATA_TYPE = b"; Type: TABLE DATA;"
"""pg_dump puts ``-- Data for Name: t; Type: TABLE DATA; Schema: s; Owner: o`` (newlines in names
cleaned out) before each table's COPY line: only a COPY line after it counts as a header, so a
``COPY ... FROM stdin;`` line inside a string literal (a comment on an object, a function body)
is not taken for one."""
_END = b"\n\\.\n"
"""A COPY block ends with a line holding only ``\\.`` (a row cannot: backslashes are doubled)."""
_FIND_END = re.compile(re.escape(_END)).search
"""``_END``'s first place in a chunk: the regular expression engine scans for it ~30% faster than
``bytes.find``, whose skip table is defeated by the newline (the commonest byte of a dump) at the
needle's end."""


MAX_HEADER = 1024 * 1024
"""A COPY header (with its column list) longer than this is not believed."""


def catalog_key(schema: str, table: str) -> str:
    """A table's key in the catalog: ``schema.table``, or both names double-quoted (``""`` for a
    quote) when either holds a dot, so that ``"a.b".c`` and ``a."b.c"`` stay two tables. The
    forms cannot meet: a plain key holds exactly one dot, a quoted one at least two."""
    if "." in schema or "." in table:
        return '"' + schema.replace('"', '""') + '"."' + table.replace('"', '""') + '"'
    return f"{schema}.{table}"


def _may_start(line: bytes, prefix: bytes) -> bool:
    """True when ``line`` starts with ``prefix``, or is a beginning of it."""
    return line[: len(prefix)] == prefix[: len(line)]


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
        self._pending = b""  # outside COPY data: the current line so far, if it may matter
        self._skipping = False  # outside COPY data: inside a line that cannot matter
        self._armed = False  # outside COPY data: a "Data for Name" comment came, its COPY line may follow
        self._header: bytes | None = None  # outside COPY data: a COPY line whose quoted name holds a newline
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
        pos = 0
        if self._skipping:
            pos = chunk.find(b"\n") + 1
            if pos == 0:
                return b""
            self._skipping = False
        while True:
            end = chunk.find(b"\n", pos)
            if end < 0:
                self._keep_partial(chunk[pos:])
                return b""
            line = self._pending + chunk[pos:end] if self._pending else chunk[pos:end]
            self._pending = b""
            pos = end + 1
            if self._line(line):
                return chunk[pos:]

    def _keep_partial(self, rest: bytes) -> None:
        """Keep the start of the current line only while it may still be a comment or header
        that matters (so a long line of DDL, in small chunks, is never copied again and again)."""
        line = self._pending + rest
        if self._header is None and not any(_may_start(line, prefix) for prefix in (b"COPY ", _DATA_COMMENT)):
            self._pending, self._skipping = b"", True
            self._armed = self._armed and line.startswith(b"--")
        elif len(line) + len(self._header or b"") > MAX_HEADER:
            self._pending, self._skipping, self._header, self._armed = b"", True, None, False
        else:
            self._pending = line

    def _line(self, line: bytes) -> bool:
        """Take one whole line outside COPY data; True when it started a table's COPY block."""
        if self._header is not None:  # inside a quoted name that holds a newline
            line = self._header + b"\n" + line
            self._header = None
        elif line.startswith(_DATA_COMMENT) and _DATA_TYPE in line:
            self._armed = True
            return False
        elif not (self._armed and line.startswith(b"COPY ")):
            if line and not line.startswith(b"--"):
                self._armed = False  # the data comment is followed by "--", a blank line, then COPY
            return False
        if line.count(b'"') % 2:  # a quote is still open: the header goes on in the next line
            if len(line) <= MAX_HEADER:
                self._header = line
            else:
                self._armed = False
            return False
        self._armed = False
        match = _HEADER.match(line)
        if match is None:
            return False
        self._begin(catalog_key(_unquote(match.group(1)), _unquote(match.group(2))))
        return True

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
        found = _FIND_END(chunk)
        if found is not None:
            end = found.start()
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
