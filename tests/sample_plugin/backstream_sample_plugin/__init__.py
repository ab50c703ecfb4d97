"""A sample third-party backstream plugin: a toy engine (``samplekv``, a key-value file with a
journal) with its source, its journal archive and the ``samplekv-archive`` command, an option it
adds to ``backup``, and the ``sample-reverse`` compressor.

It is installed as a separate distribution and found through its ``backstream`` entry point,
exactly as an external package would be; docs/plugins.md walks through it. This module holds the
hook implementations; each imports what it registers, so an unused family costs nothing.
"""

from __future__ import annotations

from typing import Any

from backstream import Register, hookimpl


@hookimpl
def backstream_register_sources(register: Register[Any]) -> None:
    from backstream_sample_plugin.source import KvFactory

    register.add("samplekv", KvFactory())


@hookimpl
def backstream_register_archives(register: Register[Any]) -> None:
    from backstream_sample_plugin.archive import JournalArchive

    register.add("samplekv-journal", JournalArchive())


@hookimpl
def backstream_register_commands(register: Register[Any]) -> None:
    from backstream_sample_plugin.command import ArchiveJournal, BackupOptions

    register.add("samplekv-archive", ArchiveJournal())
    register.add("backup:samplekv", BackupOptions())


@hookimpl
def backstream_register_compressors(register: Register[Any]) -> None:
    from backstream_sample_plugin.reverse import SampleReverseFactory

    register.add("sample-reverse", SampleReverseFactory())
