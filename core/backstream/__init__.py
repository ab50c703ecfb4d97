"""backstream: streaming backup and point-in-time recovery for PostgreSQL, MySQL/MariaDB and SQLite.

The public API for users and plugin authors; ``backstream_plugins`` imports nothing else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below are imported on first use (PEP 562): `import backstream` stays cheap
    from backstream.chunks import CHUNK_SIZE, rechunk, split
    from backstream.codecs import MemberDecoder
    from backstream.crypto import (
        AuditLog,
        CryptographyAead,
        Decryption,
        Encryptor,
        Header,
        Rewrapped,
        check_kdf_params,
        derive_passphrase_key,
        encode_context,
        key_providers,
        new_encryptor,
        new_kdf_params,
        open_encrypted,
        read_header,
        read_passphrase,
        rewrap_encrypted,
    )
    from backstream.errors import (
        BackstreamError,
        ConfigError,
        IntegrityError,
        KeyProviderError,
        MissingDependencyError,
        PluginError,
        RepositoryError,
        SourceError,
        StorageError,
        UnknownPluginError,
        VerificationError,
        missing_dependency,
        os_reason,
        primary_error,
    )
    from backstream.events import JobFailed, JobFinished, JobStarted
    from backstream.hookspecs import hookimpl
    from backstream.mysqlurl import MySQLEndpoint, import_pymysql, mysql_error_text, parse_mysql_url, quote_mysql_ident
    from backstream.optionfile import mysql_password_args
    from backstream.options import check_options, int_option
    from backstream.pipeline import Pipeline, PipelineResult, StageMetrics, Transform
    from backstream.pipes import PipeChunks, make_pipe
    from backstream.plugins import Plugins, make_plugin_manager
    from backstream.protocols import (
        Aead,
        BlockingChunks,
        ByteSink,
        ByteSource,
        ByteWriter,
        Check,
        CheckResult,
        CipherFactory,
        Codec,
        Command,
        CommandOptions,
        CompressorFactory,
        DrillOutcome,
        EmptyFolders,
        JobContext,
        KeyProvider,
        LogArchive,
        MultipartUploads,
        Notifier,
        ProcessLocal,
        RecoveryWindow,
        RestoreDrill,
        RestoreOutcome,
        RestorePath,
        RestoreRequest,
        Source,
        SourceFactory,
        Stanza,
        Storage,
        StorageFactory,
    )
    from backstream.registry import Entry, Register, Registry
    from backstream.runtime import run_async
    from backstream.streams import MemoryWriter, file_sink, file_source, iterable_source, memory_sink
    from backstream.tools import kill_tool, open_tool
    from backstream.version import __version__

_LAZY: dict[str, str] = {
    "MemberDecoder": "backstream.codecs",
    "CHUNK_SIZE": "backstream.chunks",
    "rechunk": "backstream.chunks",
    "split": "backstream.chunks",
    "AuditLog": "backstream.crypto",
    "CryptographyAead": "backstream.crypto",
    "Decryption": "backstream.crypto",
    "Encryptor": "backstream.crypto",
    "Header": "backstream.crypto",
    "Rewrapped": "backstream.crypto",
    "check_kdf_params": "backstream.crypto",
    "derive_passphrase_key": "backstream.crypto",
    "encode_context": "backstream.crypto",
    "key_providers": "backstream.crypto",
    "new_encryptor": "backstream.crypto",
    "new_kdf_params": "backstream.crypto",
    "open_encrypted": "backstream.crypto",
    "read_header": "backstream.crypto",
    "read_passphrase": "backstream.crypto",
    "rewrap_encrypted": "backstream.crypto",
    "BackstreamError": "backstream.errors",
    "ConfigError": "backstream.errors",
    "IntegrityError": "backstream.errors",
    "KeyProviderError": "backstream.errors",
    "MissingDependencyError": "backstream.errors",
    "PluginError": "backstream.errors",
    "RepositoryError": "backstream.errors",
    "SourceError": "backstream.errors",
    "StorageError": "backstream.errors",
    "UnknownPluginError": "backstream.errors",
    "VerificationError": "backstream.errors",
    "missing_dependency": "backstream.errors",
    "os_reason": "backstream.errors",
    "primary_error": "backstream.errors",
    "MySQLEndpoint": "backstream.mysqlurl",
    "import_pymysql": "backstream.mysqlurl",
    "mysql_error_text": "backstream.mysqlurl",
    "mysql_password_args": "backstream.optionfile",
    "parse_mysql_url": "backstream.mysqlurl",
    "quote_mysql_ident": "backstream.mysqlurl",
    "JobFailed": "backstream.events",
    "JobFinished": "backstream.events",
    "JobStarted": "backstream.events",
    "hookimpl": "backstream.hookspecs",
    "check_options": "backstream.options",
    "int_option": "backstream.options",
    "PipeChunks": "backstream.pipes",
    "Pipeline": "backstream.pipeline",
    "PipelineResult": "backstream.pipeline",
    "StageMetrics": "backstream.pipeline",
    "Transform": "backstream.pipeline",
    "Plugins": "backstream.plugins",
    "make_pipe": "backstream.pipes",
    "kill_tool": "backstream.tools",
    "open_tool": "backstream.tools",
    "make_plugin_manager": "backstream.plugins",
    "Aead": "backstream.protocols",
    "BlockingChunks": "backstream.protocols",
    "ByteSink": "backstream.protocols",
    "ByteSource": "backstream.protocols",
    "ByteWriter": "backstream.protocols",
    "Check": "backstream.protocols",
    "CheckResult": "backstream.protocols",
    "CipherFactory": "backstream.protocols",
    "Codec": "backstream.protocols",
    "Command": "backstream.protocols",
    "CommandOptions": "backstream.protocols",
    "CompressorFactory": "backstream.protocols",
    "DrillOutcome": "backstream.protocols",
    "LogArchive": "backstream.protocols",
    "RecoveryWindow": "backstream.protocols",
    "RestoreDrill": "backstream.protocols",
    "RestoreOutcome": "backstream.protocols",
    "RestorePath": "backstream.protocols",
    "RestoreRequest": "backstream.protocols",
    "JobContext": "backstream.protocols",
    "EmptyFolders": "backstream.protocols",
    "MultipartUploads": "backstream.protocols",
    "KeyProvider": "backstream.protocols",
    "Notifier": "backstream.protocols",
    "ProcessLocal": "backstream.protocols",
    "Source": "backstream.protocols",
    "SourceFactory": "backstream.protocols",
    "Stanza": "backstream.protocols",
    "Storage": "backstream.protocols",
    "StorageFactory": "backstream.protocols",
    "Entry": "backstream.registry",
    "Register": "backstream.registry",
    "Registry": "backstream.registry",
    "run_async": "backstream.runtime",
    "MemoryWriter": "backstream.streams",
    "file_sink": "backstream.streams",
    "file_source": "backstream.streams",
    "iterable_source": "backstream.streams",
    "memory_sink": "backstream.streams",
    "__version__": "backstream.version",
}
"""Public name -> the module that defines it. ``wal-push`` runs once per WAL segment, so start-up
time matters: a submodule import must not drag in crypto, the pipeline and the plugin manager."""


_MOVED: dict[str, str] = {
    "PgSession": "backstream_plugins.postgresql.session",
    "import_psycopg": "backstream_plugins.postgresql.session",
    "parse_tablespace_map": "backstream_plugins.postgresql.tablespace_map",
    "format_tablespace_map": "backstream_plugins.postgresql.tablespace_map",
}
"""Deprecated aliases (CHANGELOG.md): names that moved to an engine plugin, imported from there on
first use with a DeprecationWarning, so that ``import backstream`` imports no database driver.
They go in the next release; import them from the module named here."""


def __getattr__(name: str) -> Any:
    moved = _MOVED.get(name)
    if moved is not None:
        import warnings

        warnings.warn(
            f"backstream.{name} is deprecated: it moved to {moved}.{name}", DeprecationWarning, stacklevel=2
        )
        return getattr(importlib.import_module(moved), name)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'backstream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "MemberDecoder",
    "Aead",
    "AuditLog",
    "CryptographyAead",
    "Decryption",
    "Encryptor",
    "Header",
    "Rewrapped",
    "check_kdf_params",
    "derive_passphrase_key",
    "encode_context",
    "key_providers",
    "new_encryptor",
    "new_kdf_params",
    "open_encrypted",
    "read_header",
    "read_passphrase",
    "rewrap_encrypted",
    "CHUNK_SIZE",
    "BackstreamError",
    "BlockingChunks",
    "ByteSink",
    "ByteSource",
    "ByteWriter",
    "Check",
    "CheckResult",
    "CipherFactory",
    "Codec",
    "Command",
    "CommandOptions",
    "CompressorFactory",
    "DrillOutcome",
    "LogArchive",
    "RecoveryWindow",
    "RestoreDrill",
    "RestoreOutcome",
    "RestorePath",
    "RestoreRequest",
    "ConfigError",
    "Entry",
    "IntegrityError",
    "JobContext",
    "EmptyFolders",
    "MultipartUploads",
    "JobFailed",
    "JobFinished",
    "JobStarted",
    "KeyProvider",
    "KeyProviderError",
    "MemoryWriter",
    "MissingDependencyError",
    "Notifier",
    "ProcessLocal",
    "PipeChunks",
    "Pipeline",
    "PipelineResult",
    "PluginError",
    "Plugins",
    "Register",
    "Registry",
    "RepositoryError",
    "Source",
    "SourceError",
    "SourceFactory",
    "StageMetrics",
    "Stanza",
    "Storage",
    "StorageError",
    "StorageFactory",
    "Transform",
    "UnknownPluginError",
    "VerificationError",
    "__version__",
    "file_sink",
    "file_source",
    "check_options",
    "hookimpl",
    "int_option",
    "iterable_source",
    "make_pipe",
    "kill_tool",
    "open_tool",
    "make_plugin_manager",
    "memory_sink",
    "missing_dependency",
    "os_reason",
    "MySQLEndpoint",
    "import_pymysql",
    "mysql_error_text",
    "mysql_password_args",
    "parse_mysql_url",
    "quote_mysql_ident",
    "primary_error",
    "rechunk",
    "run_async",
    "split",
]
