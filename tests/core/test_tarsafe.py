"""Extracting tar archives safely on every interpreter: the member checks of backstream.tarsafe.

These run wherever the suite runs, Debian 12's Python 3.11.2 (no ``tarfile`` filters) included.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from backstream.tarsafe import UnsafeMemberError, extract_member, safe_member
from hypothesis import given, settings
from hypothesis import strategies as st


def _archive(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def _file(name: str, data: bytes = b"x", mode: int = 0o600) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, b""


def _special(name: str, kind: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, b""


def _extract_stream(data: bytes, dest: Path) -> None:
    """As the PITR restore reads a base backup: a non-seekable stream, members in order."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as archive:
        for member in archive:
            extract_member(archive, member, dest)


def test_plain_files_directories_and_inner_links_are_extracted(tmp_path: Path) -> None:
    folder = tarfile.TarInfo("global")
    folder.type, folder.mode = tarfile.DIRTYPE, 0o700
    data = _archive(
        (folder, b""),
        _file("global/pg_control", b"control"),
        _link("global/alias", "pg_control"),
        _link("global/hard", "global/pg_control", tarfile.LNKTYPE),
    )
    _extract_stream(data, tmp_path)
    assert (tmp_path / "global" / "pg_control").read_bytes() == b"control"
    assert os.readlink(tmp_path / "global" / "alias") == "pg_control"
    assert (tmp_path / "global" / "hard").read_bytes() == b"control"


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_file("/etc/evil"), "absolute path"),
        (_file("../evil"), "outside"),
        (_file("base/../../evil"), "outside"),
        (_link("link", "/etc/passwd"), "absolute path"),
        (_link("base/link", "../../etc"), "leaving"),
        (_link("hard", "../outside", tarfile.LNKTYPE), "hard link"),
        (_special("dev", tarfile.CHRTYPE), "device file"),
        (_special("disk", tarfile.BLKTYPE), "device file"),
        (_special("pipe", tarfile.FIFOTYPE), "FIFO"),
    ],
)
def test_unsafe_members_are_refused_and_write_nothing(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes], reason: str
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeMemberError, match=reason):
        _extract_stream(_archive(member), dest)
    assert list(dest.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]


def test_a_link_planted_earlier_cannot_carry_a_later_file_outside(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", dest / "escape")  # as if left by an earlier, unchecked step
    with pytest.raises(UnsafeMemberError, match="outside"):
        _extract_stream(_archive(_file("escape/file")), dest)
    assert list((tmp_path / "outside").iterdir()) == []


def test_modes_lose_setuid_and_group_other_write_bits(tmp_path: Path) -> None:
    _extract_stream(_archive(_file("tool", mode=0o6777), _file("readonly", mode=0o400)), tmp_path)
    assert stat.S_IMODE((tmp_path / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "readonly").stat().st_mode) == 0o600


def test_files_belong_to_the_extracting_user_not_the_archive(tmp_path: Path) -> None:
    info, data = _file("owned")
    info.uid, info.gid, info.uname, info.gname = 4242, 4242, "nobody-here", "nobody-here"
    _extract_stream(_archive((info, data)), tmp_path)
    assert (tmp_path / "owned").stat().st_uid == os.geteuid()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "..", ".", "b", "/", ""]), min_size=1, max_size=6))
def test_no_accepted_name_resolves_outside_the_target(parts: list[str]) -> None:
    name = "/".join(parts)
    info = tarfile.TarInfo(name)
    dest = "/srv/restore/data"
    try:
        safe_member(info, dest)
    except UnsafeMemberError:
        return
    resolved = os.path.normpath(os.path.join(dest, name))
    assert resolved == dest or resolved.startswith(dest + "/")
