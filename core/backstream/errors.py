"""The one error hierarchy of backstream, rooted at BackstreamError.

Plugins translate driver errors into these at their boundary; the CLI prints one line per error.
"""

from __future__ import annotations

import os


class BackstreamError(Exception):
    """Base of every error a user can cause or meet; its message is the one line the CLI prints."""

    exit_code: int = 1


class ConfigError(BackstreamError):
    """Bad configuration or command-line input."""

    exit_code = 2


class PluginError(BackstreamError):
    """A plugin failed to load, register or validate."""


class UnknownPluginError(PluginError):
    """A plugin name that no registered plugin provides."""

    exit_code = 2


class MissingDependencyError(PluginError):
    """A plugin needs an optional dependency that is not installed; the message names the extra."""


class SourceError(BackstreamError):
    """The data source (database, dump tool, file) failed."""


class StorageError(BackstreamError):
    """The storage backend failed or is unreachable."""


class RepositoryError(BackstreamError):
    """The repository is missing, locked, or not in the expected state."""


class IntegrityError(BackstreamError):
    """Stored data does not match what was written: tampered, truncated or corrupt."""

    exit_code = 3


class KeyProviderError(BackstreamError):
    """A key could not be wrapped or unwrapped (wrong passphrase, wrong key, KMS failure)."""


class VerificationError(BackstreamError):
    """A restored database failed verification."""


def missing_dependency(module: str, extra: str) -> MissingDependencyError:
    """The error for an optional module that is not installed, with the install hint."""
    return MissingDependencyError(
        f"the Python module {module!r} is not installed; install it with: pip install 'backstream[{extra}]'"
    )


def os_reason(exc: OSError) -> str:
    """The errno text of ``exc`` in lower case (``permission denied``), without the path."""
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system error that reached the command line: what and where,
    ``permission denied: /root/x.db`` (``... -> /other`` for a rename or link)."""
    where = "" if exc.filename is None else f": {os.fsdecode(exc.filename)}"
    if exc.filename2 is not None:
        where += f" -> {os.fsdecode(exc.filename2)}"
    return os_reason(exc) + where


def primary_error(exc: BaseException) -> BaseException:
    """The error behind a task-group failure: a backstream error first, never the cancellations
    it caused; ``exc`` itself when it is not an exception group."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    import anyio  # here, not at the top: errors.py is on wal-push's start-up path

    try:
        cancelled: type[BaseException] = anyio.get_cancelled_exc_class()
    except RuntimeError:  # outside the event loop (the CLI, after anyio.run): backstream runs on asyncio
        import asyncio

        cancelled = asyncio.CancelledError
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        elif not isinstance(error, cancelled):
            leaves.append(error)

    walk(exc)
    ours = [leaf for leaf in leaves if isinstance(leaf, BackstreamError)]
    return (ours or leaves or [exc])[0]
