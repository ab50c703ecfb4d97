"""The hook specifications every backstream plugin implements a subset of.

Registration hooks receive a ``register`` callback; lifecycle hooks receive a frozen event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from backstream.events import JobFailed, JobFinished, JobStarted
    from backstream.protocols import (
        Check,
        CipherFactory,
        Command,
        CommandOptions,
        CompressorFactory,
        KeyProvider,
        LogArchive,
        Notifier,
        SourceFactory,
        StorageFactory,
    )
    from backstream.registry import Register

PROJECT = "backstream"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""The marker plugins decorate their hook functions with."""

# --- Registration: every implementation is called; names must be unique per family. -----------


@hookspec
def backstream_register_sources(register: Register[SourceFactory]) -> None:
    """Add database/file sources: ``register.add("sqlite", SqliteFactory())``.

    :param register: the source registry's callback; ``add(name, factory, requires=(), extra=None)``.
    :return: nothing. Every implementation is called; a name registered twice is an error.
    """


@hookspec
def backstream_register_compressors(register: Register[CompressorFactory]) -> None:
    """Add compression formats: ``register.add("zstd", ZstdFactory(), requires=("zstandard",), extra="zstd")``.

    :param register: the compressor registry's callback.
    :return: nothing. Every implementation is called; a name registered twice is an error.
    """


@hookspec
def backstream_register_ciphers(register: Register[CipherFactory]) -> None:
    """Add AEAD cipher suites for the encrypted object format.

    :param register: the cipher registry's callback.
    :return: nothing. Every implementation is called; a name registered twice is an error.
    """


@hookspec
def backstream_register_kms(register: Register[KeyProvider]) -> None:
    """Add key providers (passphrase, keystore, cloud KMS) by their key-reference scheme.

    :param register: the key-provider registry's callback.
    :return: nothing. Every implementation is called; a name registered twice is an error.
    """


@hookspec
def backstream_register_storage(register: Register[StorageFactory]) -> None:
    """Add storage backends; each declares the URL protocols it serves (``"*"`` for any).

    :param register: the storage registry's callback.
    :return: nothing. Every implementation is called; a name registered twice is an error.
        A protocol claimed by name wins over a ``"*"`` backend.
    """


@hookspec
def backstream_register_checks(register: Register[Check]) -> None:
    """Add verification checks run against restored databases.

    :param register: the check registry's callback.
    :return: nothing. Every implementation is called; a name registered twice is an error.
    """


@hookspec
def backstream_register_notifiers(register: Register[Notifier]) -> None:
    """Add notifiers that deliver job events (mail, webhooks, chat).

    :param register: the notifier registry's callback.
    :return: nothing. Every implementation is called; a name registered twice is an error.
    """


@hookspec
def backstream_register_archives(register: Register[LogArchive]) -> None:
    """Add log archives kept beside the backups (PostgreSQL WAL, MySQL binlogs): ``check``, ``cleanup``,
    ``prune`` and ``stats`` cover every registered archive without knowing what it holds.

    :param register: the archive registry's callback: ``register.add("wal", WalArchive())``.
    :return: nothing. Every implementation is called; a name registered twice is an error.
    """


@hookspec
def backstream_register_commands(register: Register[Command | CommandOptions]) -> None:
    """Add ``backstream`` subcommands, and options to existing commands, as llm's ``register_commands``:
    ``register.add("wal-push", WalPush())`` (a ``Command``: ``help``, ``configure(parser)``,
    ``run(args) -> int``), ``register.add("restore:postgresql", Options())`` (a ``CommandOptions``:
    ``extends``, ``configure(parser)``, ``check(args)``).

    :param register: the command registry's callback; a command's registered name is the word a user types.
    :return: nothing. Every implementation is called; a name registered twice, or a command named like one
        of backstream's own, is an error.
    """


# --- Job lifecycle: every implementation is called; return values are ignored. ---------------


@hookspec
def backstream_job_started(event: JobStarted) -> None:
    """A job (backup, restore, verify, ...) started.

    :param event: the frozen start event.
    :return: ignored. Every implementation is called; an exception is logged, never fatal.
    """


@hookspec
def backstream_job_finished(event: JobFinished) -> None:
    """A job finished successfully.

    :param event: the frozen completion event.
    :return: ignored. Every implementation is called; an exception is logged, never fatal.
    """


@hookspec
def backstream_job_failed(event: JobFailed) -> None:
    """A job failed.

    :param event: the frozen failure event, with the one-line error message.
    :return: ignored. Every implementation is called; an exception is logged, never fatal.
    """
