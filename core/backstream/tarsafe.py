"""Member checks for extracting a tar archive we did not write ourselves into a directory.

The rules of Python's ``tarfile`` ``data`` filter (3.11.4+), written out so that every
interpreter backstream supports (Debian 12's 3.11.2 included) applies the same ones.
"""

from __future__ import annotations

import copy
import os
import stat
import tarfile
from pathlib import Path


class UnsafeMemberError(tarfile.TarError):
    """A member that would write outside the target, or is not a plain file, directory or link."""


def safe_member(member: tarfile.TarInfo, dest: str | os.PathLike[str]) -> tarfile.TarInfo:
    """``member`` as it may be extracted into ``dest``, or :class:`UnsafeMemberError`.

    Refused: absolute names, names or hard links that leave ``dest`` (``..``), symbolic links
    that are absolute or point outside ``dest``, and device files and FIFOs. Kept, but made
    harmless: modes lose setuid/setgid/sticky and group/other write bits (owners keep
    read/write on files), and ownership is the extracting user's, not the archive's.
    """
    root = os.path.realpath(dest)
    name = member.name
    if name.startswith("/") or os.path.isabs(name):
        raise UnsafeMemberError(f"{name!r} has an absolute path")
    target = os.path.realpath(os.path.join(root, name))
    if not _inside(target, root):
        raise UnsafeMemberError(f"{name!r} would be written outside {dest}")
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise UnsafeMemberError(f"{name!r} is a device file or FIFO")
    if member.issym():
        link = member.linkname
        if os.path.isabs(link):
            raise UnsafeMemberError(f"{name!r} is a symbolic link to the absolute path {link!r}")
        pointed = os.path.realpath(os.path.join(root, os.path.dirname(name), link))
        if not _inside(pointed, root):
            raise UnsafeMemberError(f"{name!r} is a symbolic link leaving {dest} ({link!r})")
    elif member.islnk():
        link = member.linkname
        if os.path.isabs(link) or not _inside(os.path.realpath(os.path.join(root, link)), root):
            raise UnsafeMemberError(f"{name!r} is a hard link to {link!r}, outside {dest}")
    elif not (member.isreg() or member.isdir()):
        raise UnsafeMemberError(f"{name!r} is of a type that cannot be extracted safely")
    clean = copy.copy(member)
    mode = member.mode & 0o777 & ~(stat.S_IWGRP | stat.S_IWOTH)
    if member.isreg() or member.islnk():
        mode |= stat.S_IRUSR | stat.S_IWUSR
    clean.mode = mode
    # Owned by whoever extracts (tarfile chowns to the archive's owner only as root).
    clean.uid, clean.gid = os.geteuid(), os.getegid()
    clean.uname = clean.gname = ""
    return clean


def extract_member(archive: tarfile.TarFile, member: tarfile.TarInfo, dest: str | os.PathLike[str]) -> None:
    """Extract one member of ``archive`` into ``dest`` after :func:`safe_member`'s checks."""
    clean = safe_member(member, dest)
    if hasattr(tarfile, "data_filter"):
        # 3.11.4+: pass the checked member through a filter, as extract() without one is deprecated.
        archive.extract(clean, Path(dest), numeric_owner=True, filter=lambda checked, _path: checked)
    else:
        archive.extract(clean, Path(dest), numeric_owner=True)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
