"""backstream: streaming backup and point-in-time recovery for PostgreSQL, MySQL/MariaDB and SQLite.

The public API for users and plugin authors; ``backstream_plugins`` imports nothing else.
"""

from backstream.chunks import CHUNK_SIZE, rechunk, split
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
)
from backstream.events import JobFailed, JobFinished, JobStarted
from backstream.hookspecs import hookimpl
from backstream.pipeline import Pipeline, PipelineResult, StageMetrics, Transform
from backstream.plugins import Plugins, make_plugin_manager
from backstream.protocols import (
    ByteSink,
    ByteSource,
    ByteWriter,
    Check,
    CheckResult,
    CipherFactory,
    Codec,
    CompressorFactory,
    JobContext,
    KeyProvider,
    Notifier,
    Source,
    SourceFactory,
    Stanza,
    Storage,
    StorageFactory,
)
from backstream.registry import Entry, Register, Registry
from backstream.streams import MemoryWriter, file_sink, file_source, iterable_source, memory_sink
from backstream.version import __version__

__all__ = [
    "CHUNK_SIZE",
    "BackstreamError",
    "ByteSink",
    "ByteSource",
    "ByteWriter",
    "Check",
    "CheckResult",
    "CipherFactory",
    "Codec",
    "CompressorFactory",
    "ConfigError",
    "Entry",
    "IntegrityError",
    "JobContext",
    "JobFailed",
    "JobFinished",
    "JobStarted",
    "KeyProvider",
    "KeyProviderError",
    "MemoryWriter",
    "MissingDependencyError",
    "Notifier",
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
    "hookimpl",
    "iterable_source",
    "make_plugin_manager",
    "memory_sink",
    "missing_dependency",
    "rechunk",
    "split",
]
