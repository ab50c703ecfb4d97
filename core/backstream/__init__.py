"""backstream: streaming backup and point-in-time recovery for PostgreSQL, MySQL/MariaDB and SQLite.

The public API for users and plugin authors; ``backstream_plugins`` imports nothing else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "CHUNK_SIZE": "backstream.chunks",
    "rechunk": "backstream.chunks",
    "split": "backstream.chunks",
    "MemberDecoder": "backstream.codecs",
    "AuditLog": "backstream.crypto",
    "check_kdf_params": "backstream.crypto",
    "CryptographyAead": "backstream.crypto",
    "Decryption": "backstream.crypto",
    "derive_passphrase_key": "backstream.crypto",
    "encode_context": "backstream.crypto",
    "Encryptor": "backstream.crypto",
    "Header": "backstream.crypto",
    "key_providers": "backstream.crypto",
    "new_encryptor": "backstream.crypto",
    "new_kdf_params": "backstream.crypto",
    "open_encrypted": "backstream.crypto",
    "read_header": "backstream.crypto",
    "read_passphrase": "backstream.crypto",
    "rewrap_encrypted": "backstream.crypto",
    "Rewrapped": "backstream.crypto",
    "DEFAULT_CIPHER": "backstream.defaults",
    "DEFAULT_COMPRESSION": "backstream.defaults",
    "BackstreamError": "backstream.errors",
    "ConfigError": "backstream.errors",
    "IntegrityError": "backstream.errors",
    "KeyProviderError": "backstream.errors",
    "missing_dependency": "backstream.errors",
    "MissingDependencyError": "backstream.errors",
    "os_reason": "backstream.errors",
    "PluginError": "backstream.errors",
    "primary_error": "backstream.errors",
    "RepositoryError": "backstream.errors",
    "SourceError": "backstream.errors",
    "StorageError": "backstream.errors",
    "UnknownPluginError": "backstream.errors",
    "VerificationError": "backstream.errors",
    "JobFailed": "backstream.events",
    "JobFinished": "backstream.events",
    "JobStarted": "backstream.events",
    "hookimpl": "backstream.hookspecs",
    "check_options": "backstream.options",
    "int_option": "backstream.options",
    "Pipeline": "backstream.pipeline",
    "PipelineResult": "backstream.pipeline",
    "StageMetrics": "backstream.pipeline",
    "Transform": "backstream.pipeline",
    "LateTransform": "backstream.pipeline",
    "make_pipe": "backstream.pipes",
    "PipeChunks": "backstream.pipes",
    "make_plugin_manager": "backstream.plugins",
    "Plugins": "backstream.plugins",
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
    "ConfigurableKeys": "backstream.protocols",
    "ContentTap": "backstream.protocols",
    "CreatesKeys": "backstream.protocols",
    "DrillOutcome": "backstream.protocols",
    "DumpsFiles": "backstream.protocols",
    "EmptyFolders": "backstream.protocols",
    "ExclusiveKeys": "backstream.protocols",
    "ExportsPublicKeys": "backstream.protocols",
    "JobContext": "backstream.protocols",
    "KeyProvider": "backstream.protocols",
    "LogArchive": "backstream.protocols",
    "MultipartUploads": "backstream.protocols",
    "NamedDump": "backstream.protocols",
    "Notifier": "backstream.protocols",
    "NotificationChannel": "backstream.protocols",
    "Notification": "backstream.notify",
    "Notifications": "backstream.notify",
    "PreparedKeys": "backstream.protocols",
    "ProcessLocal": "backstream.protocols",
    "RecoveryWindow": "backstream.protocols",
    "RestoreDrill": "backstream.protocols",
    "RestoreOutcome": "backstream.protocols",
    "RestorePath": "backstream.protocols",
    "RestoreRequest": "backstream.protocols",
    "RestoresFiles": "backstream.protocols",
    "SizedSource": "backstream.protocols",
    "Source": "backstream.protocols",
    "SourceFactory": "backstream.protocols",
    "Stanza": "backstream.protocols",
    "Storage": "backstream.protocols",
    "StorageFactory": "backstream.protocols",
    "Entry": "backstream.registry",
    "Register": "backstream.registry",
    "Registry": "backstream.registry",
    "run_async": "backstream.runtime",
    "EventSink": "backstream.schedule",
    "JobSpec": "backstream.schedule",
    "load_schedule": "backstream.schedule",
    "NotifyPolicy": "backstream.schedule",
    "RetryPolicy": "backstream.schedule",
    "RunRecord": "backstream.schedule",
    "ScheduleConfig": "backstream.schedule",
    "Scheduler": "backstream.schedule",
    "file_sink": "backstream.streams",
    "file_source": "backstream.streams",
    "iterable_source": "backstream.streams",
    "memory_sink": "backstream.streams",
    "MemoryWriter": "backstream.streams",
    "kill_tool": "backstream.tools",
    "open_tool": "backstream.tools",
    "__version__": "backstream.version",
}
"""The one table of the public namespace: public name -> the module that defines it. ``__all__``
is its keys and the TYPE_CHECKING block below is generated from it. Names are imported on first
use (PEP 562): ``wal-push`` runs once per WAL segment, so ``import backstream`` must not drag in
crypto, the pipeline and the plugin manager."""

if TYPE_CHECKING:  # generated from _LAZY by scripts/gen_namespace.py; do not edit by hand
    from backstream.chunks import CHUNK_SIZE as CHUNK_SIZE
    from backstream.chunks import rechunk as rechunk
    from backstream.chunks import split as split
    from backstream.codecs import MemberDecoder as MemberDecoder
    from backstream.crypto import AuditLog as AuditLog
    from backstream.crypto import CryptographyAead as CryptographyAead
    from backstream.crypto import Decryption as Decryption
    from backstream.crypto import Encryptor as Encryptor
    from backstream.crypto import Header as Header
    from backstream.crypto import Rewrapped as Rewrapped
    from backstream.crypto import check_kdf_params as check_kdf_params
    from backstream.crypto import derive_passphrase_key as derive_passphrase_key
    from backstream.crypto import encode_context as encode_context
    from backstream.crypto import key_providers as key_providers
    from backstream.crypto import new_encryptor as new_encryptor
    from backstream.crypto import new_kdf_params as new_kdf_params
    from backstream.crypto import open_encrypted as open_encrypted
    from backstream.crypto import read_header as read_header
    from backstream.crypto import read_passphrase as read_passphrase
    from backstream.crypto import rewrap_encrypted as rewrap_encrypted
    from backstream.defaults import DEFAULT_CIPHER as DEFAULT_CIPHER
    from backstream.defaults import DEFAULT_COMPRESSION as DEFAULT_COMPRESSION
    from backstream.errors import BackstreamError as BackstreamError
    from backstream.errors import ConfigError as ConfigError
    from backstream.errors import IntegrityError as IntegrityError
    from backstream.errors import KeyProviderError as KeyProviderError
    from backstream.errors import MissingDependencyError as MissingDependencyError
    from backstream.errors import PluginError as PluginError
    from backstream.errors import RepositoryError as RepositoryError
    from backstream.errors import SourceError as SourceError
    from backstream.errors import StorageError as StorageError
    from backstream.errors import UnknownPluginError as UnknownPluginError
    from backstream.errors import VerificationError as VerificationError
    from backstream.errors import missing_dependency as missing_dependency
    from backstream.errors import os_reason as os_reason
    from backstream.errors import primary_error as primary_error
    from backstream.events import JobFailed as JobFailed
    from backstream.events import JobFinished as JobFinished
    from backstream.events import JobStarted as JobStarted
    from backstream.hookspecs import hookimpl as hookimpl
    from backstream.notify import Notification as Notification
    from backstream.notify import Notifications as Notifications
    from backstream.options import check_options as check_options
    from backstream.options import int_option as int_option
    from backstream.pipeline import LateTransform as LateTransform
    from backstream.pipeline import Pipeline as Pipeline
    from backstream.pipeline import PipelineResult as PipelineResult
    from backstream.pipeline import StageMetrics as StageMetrics
    from backstream.pipeline import Transform as Transform
    from backstream.pipes import PipeChunks as PipeChunks
    from backstream.pipes import make_pipe as make_pipe
    from backstream.plugins import Plugins as Plugins
    from backstream.plugins import make_plugin_manager as make_plugin_manager
    from backstream.protocols import Aead as Aead
    from backstream.protocols import BlockingChunks as BlockingChunks
    from backstream.protocols import ByteSink as ByteSink
    from backstream.protocols import ByteSource as ByteSource
    from backstream.protocols import ByteWriter as ByteWriter
    from backstream.protocols import Check as Check
    from backstream.protocols import CheckResult as CheckResult
    from backstream.protocols import CipherFactory as CipherFactory
    from backstream.protocols import Codec as Codec
    from backstream.protocols import Command as Command
    from backstream.protocols import CommandOptions as CommandOptions
    from backstream.protocols import CompressorFactory as CompressorFactory
    from backstream.protocols import ConfigurableKeys as ConfigurableKeys
    from backstream.protocols import ContentTap as ContentTap
    from backstream.protocols import CreatesKeys as CreatesKeys
    from backstream.protocols import DrillOutcome as DrillOutcome
    from backstream.protocols import DumpsFiles as DumpsFiles
    from backstream.protocols import EmptyFolders as EmptyFolders
    from backstream.protocols import ExclusiveKeys as ExclusiveKeys
    from backstream.protocols import ExportsPublicKeys as ExportsPublicKeys
    from backstream.protocols import JobContext as JobContext
    from backstream.protocols import KeyProvider as KeyProvider
    from backstream.protocols import LogArchive as LogArchive
    from backstream.protocols import MultipartUploads as MultipartUploads
    from backstream.protocols import NamedDump as NamedDump
    from backstream.protocols import NotificationChannel as NotificationChannel
    from backstream.protocols import Notifier as Notifier
    from backstream.protocols import PreparedKeys as PreparedKeys
    from backstream.protocols import ProcessLocal as ProcessLocal
    from backstream.protocols import RecoveryWindow as RecoveryWindow
    from backstream.protocols import RestoreDrill as RestoreDrill
    from backstream.protocols import RestoreOutcome as RestoreOutcome
    from backstream.protocols import RestorePath as RestorePath
    from backstream.protocols import RestoreRequest as RestoreRequest
    from backstream.protocols import RestoresFiles as RestoresFiles
    from backstream.protocols import SizedSource as SizedSource
    from backstream.protocols import Source as Source
    from backstream.protocols import SourceFactory as SourceFactory
    from backstream.protocols import Stanza as Stanza
    from backstream.protocols import Storage as Storage
    from backstream.protocols import StorageFactory as StorageFactory
    from backstream.registry import Entry as Entry
    from backstream.registry import Register as Register
    from backstream.registry import Registry as Registry
    from backstream.runtime import run_async as run_async
    from backstream.schedule import EventSink as EventSink
    from backstream.schedule import JobSpec as JobSpec
    from backstream.schedule import NotifyPolicy as NotifyPolicy
    from backstream.schedule import RetryPolicy as RetryPolicy
    from backstream.schedule import RunRecord as RunRecord
    from backstream.schedule import ScheduleConfig as ScheduleConfig
    from backstream.schedule import Scheduler as Scheduler
    from backstream.schedule import load_schedule as load_schedule
    from backstream.streams import MemoryWriter as MemoryWriter
    from backstream.streams import file_sink as file_sink
    from backstream.streams import file_source as file_source
    from backstream.streams import iterable_source as iterable_source
    from backstream.streams import memory_sink as memory_sink
    from backstream.tools import kill_tool as kill_tool
    from backstream.tools import open_tool as open_tool
    from backstream.version import __version__ as __version__
# end of the generated block


_MOVED: dict[str, str] = {
    "PgSession": "backstream_plugins.postgresql.session",
    "import_psycopg": "backstream_plugins.postgresql.session",
    "parse_tablespace_map": "backstream_plugins.postgresql.tablespace_map",
    "format_tablespace_map": "backstream_plugins.postgresql.tablespace_map",
    "MySQLEndpoint": "backstream_plugins.mysql.connection",
    "import_pymysql": "backstream_plugins.mysql.connection",
    "mysql_error_text": "backstream_plugins.mysql.connection",
    "parse_mysql_url": "backstream_plugins.mysql.connection",
    "quote_mysql_ident": "backstream_plugins.mysql.connection",
    "mysql_password_args": "backstream_plugins.mysql.optionfile",
}
"""Deprecated aliases (CHANGELOG.md): names that moved to an engine plugin, imported from there on
first use with a DeprecationWarning, so that ``import backstream`` imports no database driver.
They go in the next release; import them from the module named here."""


def __getattr__(name: str) -> Any:
    moved = _MOVED.get(name)
    if moved is not None:
        import warnings

        warnings.warn(f"backstream.{name} is deprecated: it moved to {moved}.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(moved), name)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'backstream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(_LAZY)


__all__ = sorted(_LAZY)
