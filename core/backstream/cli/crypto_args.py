"""Options and byte streams shared by ``backstream encrypt``, ``decrypt`` and ``keys``.

Key-provider options (passphrase sources, keystores, KDF costs, audit log) and stdin/stdout as streams.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import BinaryIO

import anyio.to_thread

from backstream.crypto.audit import AUDIT_ENV, AuditLog
from backstream.errors import ConfigError, SourceError, StorageError, os_reason
from backstream.protocols import ByteSink, ByteSource, ByteWriter
from backstream.streams import READ_SIZE, file_sink, file_source

STDIO = "-"


def add_key_options(parser: argparse.ArgumentParser, *, kdf: bool = False, keystore: bool = True) -> None:
    """Options that configure the key providers (every provider sees all of them)."""
    group = parser.add_argument_group("keys")
    group.add_argument(
        "--passphrase-file",
        metavar="FILE",
        help="read the passphrase (object or keystore) from the first line of FILE; "
        "default: $BACKSTREAM_PASSPHRASE, else a prompt when stdin is a terminal",
    )
    if keystore:
        group.add_argument(
            "--keystore",
            action="append",
            default=[],
            metavar="PATH",
            help="look for local keys in this keystore first (repeatable; e.g. after moving it)",
        )
    if kdf:
        group.add_argument(
            "--kdf", choices=("argon2id", "scrypt"), help="passphrase KDF for new keys (default argon2id)"
        )
        group.add_argument(
            "--kdf-param",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="override a KDF cost for new keys (argon2id: t, m KiB, p; scrypt: ln, r, p); "
            "lower values weaken the passphrase",
        )
    group.add_argument(
        "--audit-log", metavar="FILE", help=f"append key operations to FILE (default: ${AUDIT_ENV} or ~/.local/state)"
    )


def provider_options(args: argparse.Namespace) -> dict[str, str]:
    """The provider options given on the command line."""
    options: dict[str, str] = {}
    if getattr(args, "passphrase_file", None):
        options["passphrase_file"] = args.passphrase_file
    if getattr(args, "keystore", None):
        options["keystore"] = os.pathsep.join(os.path.abspath(path) for path in args.keystore)
    if getattr(args, "kdf", None):
        options["kdf"] = args.kdf
    for name, value in parse_pairs(getattr(args, "kdf_param", []), what="--kdf-param").items():
        options[f"kdf.{name}"] = value
    return options


def audit_log(args: argparse.Namespace) -> AuditLog:
    return AuditLog(args.audit_log) if getattr(args, "audit_log", None) else AuditLog()


def parse_pairs(pairs: Sequence[str], *, what: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` -> ``{"a": "1", "b": "2"}``; malformed or repeated keys raise ConfigError."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sign, value = pair.partition("=")
        key = key.strip()
        if not sign or not key:
            raise ConfigError(f"{what} expects KEY=VALUE, not {pair!r}")
        if key in result:
            raise ConfigError(f"{what} {key} is given twice")
        result[key] = value
    return result


def display_name(path: str) -> str:
    return "<stdin/stdout>" if path == STDIO else os.path.abspath(path)


def check_readable(path: str) -> None:
    """Fail early (before any key work or prompt) when the input file cannot be read."""
    if path == STDIO:
        return
    try:
        os.stat(path)  # denied is not missing: a folder on the way may be one we cannot search
    except FileNotFoundError as exc:
        raise SourceError(f"cannot read {path}: no such file") from exc
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {os_reason(exc)}") from exc
    if not os.access(path, os.R_OK):
        raise SourceError(f"cannot read {path}: permission denied")


def open_input(path: str) -> ByteSource:
    return _stdin_source() if path == STDIO else file_source(path)


def open_output(path: str, *, binary_to_terminal: bool = True) -> ByteSink:
    """A regular file (written atomically), a device or FIFO (written directly: ``/dev/null`` must
    stay a device), or stdout; ``binary_to_terminal=False`` refuses a terminal stdout."""
    if path != STDIO:
        if os.path.exists(path) and not os.path.isfile(path):
            return _special_file_sink(path)
        return file_sink(path)
    if not binary_to_terminal and sys.stdout.isatty():
        raise ConfigError("refusing to write binary data to a terminal: use -o FILE or redirect stdout")
    return _stdout_sink()


@asynccontextmanager
async def _stdin_source() -> AsyncIterator[AsyncIterator[bytes]]:
    reader = sys.stdin.buffer

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            try:
                data = await anyio.to_thread.run_sync(reader.read, READ_SIZE)
            except OSError as exc:
                raise SourceError(f"cannot read stdin: {exc.strerror or exc}") from exc
            if not data:
                return
            yield data

    yield chunks()


class _StreamWriter:
    """Buffers chunks and writes them to a stream (stdout by default) from a worker thread."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream
        self._pending: list[bytes] = []
        self._size = 0

    async def write(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._size += len(chunk)
        if self._size >= READ_SIZE:
            await self.flush()

    async def flush(self) -> None:
        data = b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        out = self._stream if self._stream is not None else sys.stdout.buffer

        def write() -> None:
            out.write(data)
            out.flush()

        await anyio.to_thread.run_sync(write)


@asynccontextmanager
async def _special_file_sink(path: str) -> AsyncIterator[ByteWriter]:
    try:
        handle = await anyio.to_thread.run_sync(open, path, "wb")
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    writer = _StreamWriter(handle)
    try:
        yield writer
        await writer.flush()
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        await anyio.to_thread.run_sync(handle.close)


@asynccontextmanager
async def _stdout_sink() -> AsyncIterator[ByteWriter]:
    """Stdout cannot be taken back: what was flushed before an error stays written (only ever
    authenticated plaintext); what is still buffered is dropped, and the CLI exits non-zero."""
    writer = _StreamWriter()
    yield writer
    await writer.flush()
