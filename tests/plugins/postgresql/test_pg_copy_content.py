"""Row counts and checksums read off a plain pg_dump stream: whatever the chunking, the same figures;
rows that look like terminators are rows; identifiers unquoted; only whole COPY blocks count."""

from __future__ import annotations

import hashlib

from backstream_plugins.postgresql.copy_content import CopyContent, catalog_key
from hypothesis import given, settings
from hypothesis import strategies as st


def data(table: str, schema: str = "public") -> bytes:
    """The comment pg_dump writes before a table's COPY block."""
    return f"--\n-- Data for Name: {table}; Type: TABLE DATA; Schema: {schema}; Owner: -\n--\n\n".encode()


DUMP = (
    b"--\n-- PostgreSQL database dump\n--\nSET client_encoding = 'UTF8';\n"
    b"CREATE FUNCTION f() RETURNS text AS $$\nCOPY not.a_header FROM stdin\n$$ LANGUAGE sql;\n"
    b"COMMENT ON TABLE public.a IS 'reload with:\nCOPY public.a (x, y) FROM stdin;\n\\.\n';\n"
    + data("a")
    + b"COPY public.a (x, y) FROM stdin;\n1\tone\n2\t\\N\n\\\\.\n3\ttab\\there\n\\.\n\n"
    + data("Mixed.Case", 'Gr\u00f6\u00dfe "Q"')
    + b'COPY "Gr\xc3\xb6\xc3\x9fe ""Q"""."Mixed.Case" ("Wert") FROM stdin;\n\\.\n\n'
    + data("no_columns")
    + b"COPY public.no_columns  FROM stdin;\n\n\n\\.\n\n"
    + data("nl name")
    + b'COPY public."nl\nname" ("col\numn", b) FROM stdin;\n1\t2\n\\.\n\n'
    + data("big", "s")
    + b"COPY s.big (v) FROM stdin;\n"
    + b"x" * 200_000
    + b"\n\\.\n\n-- PostgreSQL database dump complete\n"
)


def figures(dump: bytes, cuts: list[int]) -> dict[str, dict[str, object]]:
    content = CopyContent()
    start = 0
    for cut in sorted(set(cuts)):
        content.feed(dump[start:cut])
        start = cut
    content.feed(dump[start:])
    assert content.complete
    return content.tables


def test_rows_and_checksums_of_each_table() -> None:
    tables = figures(DUMP, [])
    assert {name: entry["rows"] for name, entry in tables.items()} == {
        "public.a": 4,  # "\\." (an escaped backslash and a dot) is a row, not the end
        '"Größe ""Q"""."Mixed.Case"': 0,  # a dot in a name: both names quoted
        "public.no_columns": 2,
        "public.nl\nname": 1,  # a quoted name with a newline: the header spans two lines
        "s.big": 1,
    }
    data = b"\n1\tone\n2\t\\N\n\\\\.\n3\ttab\\there\n"  # the header's newline, then the rows
    assert tables["public.a"]["checksum"] == "copy-sha256:" + hashlib.sha256(data).hexdigest()


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(DUMP)), max_size=40))
@settings(max_examples=200, deadline=None)
def test_any_chunking_gives_the_same_figures(cuts: list[int]) -> None:
    assert figures(DUMP, cuts) == figures(DUMP, [])


def test_one_changed_byte_changes_only_that_tables_checksum() -> None:
    changed = DUMP.replace(b"2\t\\N", b"2\t\\M")
    before, after = figures(DUMP, []), figures(changed, [])
    assert before["public.a"]["rows"] == after["public.a"]["rows"]
    assert before["public.a"]["checksum"] != after["public.a"]["checksum"]
    assert before["s.big"] == after["s.big"]


def test_a_stream_cut_inside_a_copy_block_publishes_nothing() -> None:
    into: dict[str, dict[str, object]] = {}
    tap = CopyContent(into=into)
    cut = DUMP[: DUMP.index(b"3\ttab")]
    assert tap.update(cut) == cut  # a pass-through codec
    assert tap.finish() == b""
    assert not tap.complete and into == {}


def test_as_a_tap_it_publishes_every_table_at_the_end() -> None:
    into: dict[str, dict[str, object]] = {}
    tap = CopyContent(checksums=False, into=into)
    tap.update(DUMP)
    tap.finish()
    assert into["public.a"] == {"rows": 4}


def test_a_copy_line_inside_a_string_literal_is_not_a_header() -> None:
    # the COMMENT in DUMP holds "COPY public.a (x, y) FROM stdin;" and a terminator line
    assert figures(DUMP, [])["public.a"]["rows"] == 4
    fake_only = b"COMMENT ON INDEX public.i IS 'reload with:\nCOPY public.t (a) FROM stdin;\n';\n"
    assert figures(fake_only + data("t") + b"COPY public.t (a) FROM stdin;\n1\n2\n\\.\n", [])["public.t"]["rows"] == 2


def test_long_lines_outside_copy_data_in_small_chunks_are_skipped_not_kept() -> None:
    dump = (b"SELECT '" + b"y" * 3_000_000 + b"';\n") * 4 + data("t") + b"COPY public.t (a) FROM stdin;\n1\n\\.\n"
    content = CopyContent()
    kept = 0
    for start in range(0, len(dump), 4096):
        content.feed(dump[start : start + 4096])
        kept = max(kept, len(content._pending))  # what it holds of an unfinished line
    assert content.tables["public.t"]["rows"] == 1
    assert kept < 100  # never the long lines (re-copying them chunk after chunk is quadratic)


def test_dotted_names_that_would_read_alike_are_two_tables() -> None:
    dump = data("c", '"a.b"') + b'COPY "a.b".c (v) FROM stdin;\n1\n\\.\n\n'
    dump += data('"b.c"', "a") + b'COPY a."b.c" (v) FROM stdin;\n1\n2\n\\.\n\n'
    tables = figures(dump, [])
    assert {name: entry["rows"] for name, entry in tables.items()} == {'"a.b"."c"': 1, '"a"."b.c"': 2}


def test_catalog_keys_quote_only_names_with_a_dot() -> None:
    assert catalog_key("public", 'we"ird') == 'public.we"ird'
    assert catalog_key("a.b", "c") == '"a.b"."c"'
    assert catalog_key("a", 'b."c') == '"a"."b.""c"'
