"""The tar watcher of physical base backups: it finds backup_label and backup_manifest in the
passing pg_basebackup stream whatever the chunking, including after members whose size field is
base-256 (PostgreSQL writes it so for files of 8 GiB and more), and stops watching -- without
failing -- at a header it cannot read."""

from __future__ import annotations

from backstream_plugins.postgresql.physical import _TarWatcher
from hypothesis import given, settings
from hypothesis import strategies as st


def member(name: str, body: bytes, *, base256: bool = False) -> bytes:
    header = bytearray(512)
    header[: len(name)] = name.encode()
    if base256:
        header[124:136] = b"\x80" + len(body).to_bytes(11, "big")
    else:
        header[124:136] = f"{len(body):011o}\0".encode()
    header[257:263] = b"ustar\0"
    return bytes(header) + body + b"\0" * (-len(body) % 512)


LABEL = b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIMELINE: 1\n"
MANIFEST = b'{"WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100"}]}'
STREAM = (
    member("backup_label", LABEL)
    + member("log/huge.log", b"x" * 3000, base256=True)
    + member("base/1/1259", b"\1" * 8192)
    + member("backup_manifest", MANIFEST)
    + b"\0" * 1024
)


def watch(data: bytes, cuts: list[int]) -> dict[str, bytes]:
    watcher = _TarWatcher()
    start = 0
    for cut in sorted(set(cuts)):
        watcher.feed(data[start:cut])
        start = cut
    watcher.feed(data[start:])
    return watcher.members


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=30))
@settings(max_examples=100, deadline=None)
def test_both_members_are_found_past_a_base256_size_whatever_the_chunking(cuts: list[int]) -> None:
    assert watch(STREAM, cuts) == {"backup_label": LABEL, "backup_manifest": MANIFEST}


def test_an_unreadable_header_stops_the_watch_without_failing() -> None:
    broken = bytearray(member("garbage", b"y" * 100))
    broken[124:136] = b"not a number"
    members = watch(member("backup_label", LABEL) + bytes(broken) + member("backup_manifest", MANIFEST), [700])
    assert members == {"backup_label": LABEL}  # nothing read from misaligned data after it
