"""The ``samplekv`` source: a backup is the store's ``data.kv``, streamed as it is (``strip_comments``:
without its comment lines); a restore replaces ``data.kv`` only once the whole backup was read and checked.

The dump records the journal file the store was writing (``journal`` in the manifest's metadata):
the backup rolls forward with that file and every later one (see archive.py).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio.to_thread
from backstream import JobContext, SourceError, check_options, file_sink, file_source, split

from backstream_sample_plugin.store import DATA_FILE, SCHEME, current_journal, store_dir


class KvFactory:
    """Opens samplekv stores (``register_sources``): ``samplekv:///abs/dir``."""

    name = SCHEME
    schemes = frozenset({SCHEME})

    def open(self, url: str, options: Mapping[str, str]) -> KvSource:
        check_options(SCHEME, options, ("force", "strip_comments"))
        return KvSource(store_dir(url), strip_comments=options.get("strip_comments") == "true")


class KvSource:
    """One store. ``filename`` (the ``NamedDump`` capability) names the backup's object ``data.kv``."""

    filename = DATA_FILE

    def __init__(self, directory: str, *, strip_comments: bool = False) -> None:
        self.directory = directory
        self.strip_comments = strip_comments

    @asynccontextmanager
    async def dump(self, job: JobContext) -> AsyncIterator[AsyncIterator[bytes]]:
        job.metadata["journal"] = await anyio.to_thread.run_sync(current_journal, self.directory)
        async with file_source(os.path.join(self.directory, DATA_FILE)) as chunks:
            yield _without_comments(chunks) if self.strip_comments else chunks

    async def restore(self, data: AsyncIterator[bytes], job: JobContext) -> None:
        target = os.path.join(self.directory, DATA_FILE)
        if job.options.get("force") != "true" and await anyio.to_thread.run_sync(_holds_data, target):
            raise SourceError(f"cannot restore to {target}: it holds data (use --force to replace it)")
        await anyio.to_thread.run_sync(lambda: os.makedirs(self.directory, exist_ok=True))
        async with file_sink(target) as writer:  # the file appears only if every chunk arrived intact
            async for chunk in data:
                await writer.write(chunk)


async def _without_comments(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The lines of ``chunks`` that do not start with ``#`` (a line is held until its end arrives)."""
    rest = b""
    async for chunk in chunks:
        *lines, rest = (rest + chunk).split(b"\n")
        for piece in split(b"".join(line + b"\n" for line in lines if not line.startswith(b"#"))):
            yield piece
    if rest and not rest.startswith(b"#"):
        yield rest


def _holds_data(path: str) -> bool:
    try:
        return os.path.getsize(path) > 0
    except FileNotFoundError:
        return False
