"""The plugin manager factory and the typed facade the rest of backstream calls hooks through.

No manager exists at import time: ``Plugins.load()`` builds one (built-ins, then entry points).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import pluggy

from backstream import hookspecs
from backstream.errors import ConfigError, PluginError
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
    Storage,
    StorageFactory,
)
from backstream.registry import Entry, Registry
from backstream.version import __version__

T = TypeVar("T")
log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "backstream"
AUTOLOAD_SWITCH = "BACKSTREAM_DISABLE_PLUGIN_AUTOLOAD"

BUILTIN_PLUGINS: dict[str, tuple[str, ...]] = {
    "backstream_plugins.compress.none": ("compressor",),
    "backstream_plugins.compress.gzip": ("compressor",),
    "backstream_plugins.compress.bz2": ("compressor",),
    "backstream_plugins.compress.xz": ("compressor",),
    "backstream_plugins.compress.zstd": ("compressor",),
    "backstream_plugins.compress.lz4": ("compressor",),
    "backstream_plugins.storage.fsspec_store": ("storage",),
    "backstream_plugins.cipher.chacha20_poly1305": ("cipher",),
    "backstream_plugins.cipher.aes_256_gcm": ("cipher",),
    "backstream_plugins.kms.passphrase": ("kms",),
    "backstream_plugins.kms.local": ("kms",),
    "backstream_plugins.kms.aws_kms": ("kms",),
    "backstream_plugins.kms.azure_keyvault": ("kms",),
    "backstream_plugins.kms.gcp_kms": ("kms",),
    "backstream_plugins.notify.webhook": ("notifier",),
    "backstream_plugins.notify.smtp": ("notifier",),
    "backstream_plugins.postgresql": ("source", "check", "archive", "command"),
    "backstream_plugins.sqlite": ("source", "check", "command"),
    "backstream_plugins.mysql": ("source", "check", "archive", "command"),
}
"""The built-in plugins, by dotted module name, with the families each registers (tests/core/test_plugins.py
checks that against the modules). ``Plugins.load()`` imports a built-in only when one of its families
is first asked for, as fsspec's ``known_implementations`` does: ``wal-push`` imports the engine that
serves it, not the KMS clients. The core imports nothing else of them."""

BUILTIN_LISTENERS: frozenset[str] = frozenset()
"""The built-ins (of BUILTIN_PLUGINS) that implement a job lifecycle hook (``backstream_job_started``,
``_finished``, ``_failed``): registered before an event is announced. None does today, so a backup
imports no notifier, KMS client or other engine just to announce its start (tests/core/test_plugins.py
checks the set against the modules)."""

LIFECYCLE_HOOKS: tuple[str, ...] = ("backstream_job_started", "backstream_job_finished", "backstream_job_failed")

DEFAULT_PLUGINS: tuple[str, ...] = tuple(BUILTIN_PLUGINS)
"""The built-in plugins' module names, in registration order."""

FAMILIES: dict[str, str] = {
    "source": "backstream_register_sources",
    "compressor": "backstream_register_compressors",
    "cipher": "backstream_register_ciphers",
    "kms": "backstream_register_kms",
    "storage": "backstream_register_storage",
    "check": "backstream_register_checks",
    "notifier": "backstream_register_notifiers",
    "archive": "backstream_register_archives",
    "command": "backstream_register_commands",
}
"""Plugin family -> the registration hook that fills its registry."""


def autoload_disabled() -> bool:
    """True when ``BACKSTREAM_DISABLE_PLUGIN_AUTOLOAD`` asks to skip third-party plugins."""
    return os.environ.get(AUTOLOAD_SWITCH, "").strip().lower() in {"1", "true", "yes", "on"}


def make_plugin_manager(
    *,
    autoload: bool | None = None,
    extra_plugins: Sequence[object] = (),
    defaults: Sequence[str] = DEFAULT_PLUGINS,
) -> pluggy.PluginManager:
    """Build a manager: hookspecs, built-in plugins, the ``backstream`` entry points (unless
    disabled), then ``extra_plugins``; finally ``check_pending()`` rejects misspelled hooks."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for dotted in defaults:
        _register_builtin(pm, dotted)
    if autoload is None:
        autoload = not autoload_disabled()
    if autoload:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # a third-party plugin failed to import
            raise PluginError(
                f"a plugin from the {ENTRY_POINT_GROUP!r} entry-point group failed to load: {exc}"
            ) from exc
    for plugin in extra_plugins:
        pm.register(plugin)
    _validate(pm)
    return pm


def _register_builtin(pm: pluggy.PluginManager, dotted: str) -> None:
    try:
        module = importlib.import_module(dotted)
    except ImportError as exc:
        raise PluginError(f"built-in plugin {dotted!r} cannot be imported: {exc}") from exc
    pm.register(module, name=dotted)


def _validate(pm: pluggy.PluginManager) -> None:
    """Reject misspelled hooks (``check_pending``) and hook wrappers."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from exc
    for hook in pm.hook.__dict__.values():
        if isinstance(hook, pluggy.HookCaller):
            for impl in hook.get_hookimpls():
                _refuse_wrapper(impl, hook.name)


def _refuse_wrapper(impl: Any, hook: str) -> None:
    """backstream calls each implementation on its own (to name the plugin that failed and to keep
    listeners apart), so a pluggy wrapper would silently never run: refuse it instead."""
    if impl.hookwrapper or impl.wrapper:
        name = impl.plugin_name if not impl.plugin_name.isdigit() else type(impl.plugin).__name__  # unnamed: its id
        raise PluginError(
            f"plugin {name!r} implements {hook} as a hook wrapper; backstream hooks take plain "
            "implementations (drop wrapper=True / hookwrapper=True)"
        )


class Plugins:
    """Typed access to the registries and lifecycle hooks; callers never touch ``pm.hook``."""

    def __init__(self, pm: pluggy.PluginManager, *, pending: Mapping[str, Sequence[str]] | None = None) -> None:
        """``pending``: built-in plugins not registered yet (module -> the families it registers),
        imported and registered when one of those families is first used."""
        self.pm = pm
        self._pending = dict(pending or {})
        self._registries: dict[str, Registry[Any]] = {}
        self._versions = {id(plugin): dist.version for plugin, dist in pm.list_plugin_distinfo()}
        self._dists = {id(plugin): dist.project_name for plugin, dist in pm.list_plugin_distinfo()}

    @classmethod
    def load(cls, *, autoload: bool | None = None, extra_plugins: Sequence[object] = ()) -> Plugins:
        """A manager with the entry-point plugins (unless disabled) and ``extra_plugins``
        registered now, and the built-ins registered on first use of their families."""
        pm = make_plugin_manager(autoload=autoload, extra_plugins=extra_plugins, defaults=())
        return cls(pm, pending=BUILTIN_PLUGINS)

    # --- registries ------------------------------------------------------------------------

    def registry(self, family: str) -> Registry[Any]:
        """The registry of one family (``source``, ``compressor``, ...), collected once."""
        if family not in FAMILIES:
            raise ConfigError(f"unknown plugin family {family!r} (known: {', '.join(FAMILIES)})")
        if family not in self._registries:
            self._register_pending(family)
            self._registries[family] = self._collect(family)
        return self._registries[family]

    def sources(self) -> Registry[SourceFactory]:
        return self.registry("source")

    def compressors(self) -> Registry[CompressorFactory]:
        return self.registry("compressor")

    def ciphers(self) -> Registry[CipherFactory]:
        return self.registry("cipher")

    def kms(self) -> Registry[KeyProvider]:
        return self.registry("kms")

    def storages(self) -> Registry[StorageFactory]:
        return self.registry("storage")

    def checks(self) -> Registry[Check]:
        return self.registry("check")

    def notifiers(self) -> Registry[Notifier]:
        return self.registry("notifier")

    def archives(self) -> Registry[LogArchive]:
        """The log archives kept beside the backups (``register_archives``)."""
        return self.registry("archive")

    def log_archives(self) -> list[LogArchive]:
        """Every usable log archive in registration order (built-ins first): what ``check``,
        ``cleanup``, ``prune`` and ``stats`` cover, in the order they report."""
        registry = self.archives()
        return [registry.get(entry.name) for entry in registry.registered() if entry.available]

    def commands(self) -> Registry[Command | CommandOptions]:
        """CLI subcommands and options to existing commands that plugins add (``register_commands``)."""
        return self.registry("command")

    def entries(self) -> list[Entry[Any]]:
        """Every registered plugin object of every family, for ``backstream plugins``."""
        return [entry for family in FAMILIES for entry in self.registry(family)]

    def open_storage(self, url: str, **options: Any) -> Storage:
        """Open ``url`` with the storage plugin that claims its protocol (else a ``"*"`` one)."""
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        registry = self.storages()
        chosen: Entry[StorageFactory] | None = None
        for entry in registry:
            if protocol in entry.factory.protocols:
                chosen = entry
                break
            if "*" in entry.factory.protocols and chosen is None:
                chosen = entry
        if chosen is None:
            raise ConfigError(f"no storage plugin serves {protocol}:// URLs")
        return registry.get(chosen.name).open(url, options)

    # --- lifecycle events -------------------------------------------------------------------

    def job_started(self, event: JobStarted) -> None:
        self._notify(self.pm.hook.backstream_job_started, event)

    def job_finished(self, event: JobFinished) -> None:
        self._notify(self.pm.hook.backstream_job_finished, event)

    def job_failed(self, event: JobFailed) -> None:
        self._notify(self.pm.hook.backstream_job_failed, event)

    # --- internals --------------------------------------------------------------------------

    def _register_pending(self, family: str | None) -> None:
        """Import and register the pending built-ins of ``family`` (None: the lifecycle listeners)."""
        chosen = [
            dotted
            for dotted, families in self._pending.items()
            if (family in families if family is not None else dotted in BUILTIN_LISTENERS)
        ]
        for dotted in chosen:
            del self._pending[dotted]
            _register_builtin(self.pm, dotted)
        if chosen:
            _validate(self.pm)

    def _notify(self, hook: Any, event: object) -> None:
        self._register_pending(None)  # the built-ins that listen
        for impl in hook.get_hookimpls():
            try:
                _call(impl, event=event)
            except Exception:  # a listener must never break the job it listens to
                log.exception("plugin %s failed in %s", impl.plugin_name, hook.name)

    def _collect(self, family: str) -> Registry[Any]:
        registry: Registry[Any] = Registry(family)
        hook = getattr(self.pm.hook, FAMILIES[family])
        for impl in sorted(hook.get_hookimpls(), key=_builtins_first):  # then registration order
            provider = self._dists.get(id(impl.plugin), impl.plugin_name)
            version = self._versions.get(id(impl.plugin), __version__)
            try:
                _call(impl, register=registry.register(provider, version))
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"plugin {impl.plugin_name!r} failed to register its {family}s: {exc}") from exc
        return registry


def _builtins_first(impl: Any) -> tuple[int, int]:
    """Built-ins in their table's order, whenever they were registered, then every other plugin
    (sorted() is stable: those keep their registration order)."""
    name = impl.plugin_name
    return (0, DEFAULT_PLUGINS.index(name)) if name in BUILTIN_PLUGINS else (1, 0)


def _call(impl: Any, **kwargs: Any) -> object:
    """Call one hook implementation with the arguments it asked for (pluggy's opt-in arguments)."""
    _refuse_wrapper(impl, impl.function.__name__)  # a plugin registered on the manager afterwards
    function: Callable[..., object] = impl.function
    return function(**{name: kwargs[name] for name in impl.argnames})
