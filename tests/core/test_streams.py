"""The ready-made local file source and sink: atomic replace, special files, symlinks, errors.

These are what the CLI uses for ``-o FILE`` and what the tests use as a reference sink.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import anyio
import pytest
from backstream import Pipeline, SourceError, StorageError, file_sink, file_source, iterable_source


def copy_into(target: Path | str, data: bytes) -> None:
    anyio.run(Pipeline(iterable_source([data]), [], file_sink(target)).run)


def test_a_file_is_written_whole_and_replaces_the_old_one(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_bytes(b"old")
    copy_into(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_writing_to_a_device_writes_into_it_and_leaves_it_a_device() -> None:
    copy_into("/dev/null", b"discard me")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_writing_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_bytes(b"old")
    link = tmp_path / "link"
    link.symlink_to(real)
    copy_into(link, b"via link")
    assert link.is_symlink() and real.read_bytes() == b"via link"


def test_a_missing_directory_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot write"):
        copy_into(tmp_path / "no" / "such" / "dir" / "out", b"x")


def test_a_missing_source_file_is_a_source_error(tmp_path: Path) -> None:
    async def main() -> None:
        async with file_source(tmp_path / "absent") as chunks:
            async for _ in chunks:
                pass

    with pytest.raises(SourceError, match="cannot read"):
        anyio.run(main)
