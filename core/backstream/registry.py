"""Per-family registries of named plugin factories, and the ``register`` callback hooks receive.

An entry records who provided it and whether its optional dependencies are importable.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from backstream.errors import PluginError, UnknownPluginError, missing_dependency

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered plugin object with its provenance and availability."""

    name: str
    family: str
    factory: T
    provider: str
    version: str
    requires: tuple[str, ...] = ()
    extra: str | None = None

    @property
    def missing(self) -> tuple[str, ...]:
        """The required modules that cannot be imported."""
        return tuple(module for module in self.requires if not _importable(module))

    @property
    def available(self) -> bool:
        return not self.missing

    @property
    def unavailable_reason(self) -> str | None:
        """Why the plugin cannot be used, with the install hint; None when it can."""
        missing = self.missing
        if not missing:
            return None
        return str(missing_dependency(missing[0], self.extra or self.name))


class Registry(Generic[T]):
    """The plugins of one family (compressor, storage, ...) by name."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._entries: dict[str, Entry[T]] = {}

    def register(self, provider: str, version: str) -> Register[T]:
        """The callback handed to one plugin's registration hook."""
        return Register(self, provider, version)

    def _add(self, entry: Entry[T]) -> None:
        if not entry.name or not isinstance(entry.name, str):
            raise PluginError(f"plugin {entry.provider!r} registered a {self.family} without a name")
        existing = self._entries.get(entry.name)
        if existing is not None:
            raise PluginError(
                f"{self.family} {entry.name!r} is registered twice: by {existing.provider!r} and {entry.provider!r}"
            )
        self._entries[entry.name] = entry

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def registered(self) -> list[Entry[T]]:
        """The entries in the order they were registered (built-in plugins first), not by name."""
        return list(self._entries.values())

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name``; unknown names raise UnknownPluginError listing the known ones."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise UnknownPluginError(f"unknown {self.family} {name!r} (known: {known})") from None

    def get(self, name: str) -> T:
        """The usable factory for ``name``; a missing optional dependency raises its install hint."""
        entry = self.entry(name)
        missing = entry.missing
        if missing:
            raise missing_dependency(missing[0], entry.extra or entry.name)
        return entry.factory


class Register(Generic[T]):
    """The callback a registration hook receives: ``register.add(name, factory, ...)``."""

    def __init__(self, registry: Registry[T], provider: str, version: str) -> None:
        self._registry = registry
        self._provider = provider
        self._version = version

    @property
    def family(self) -> str:
        return self._registry.family

    def add(self, name: str, factory: T, *, requires: Sequence[str] = (), extra: str | None = None) -> None:
        """Register ``factory`` as ``name``. ``requires`` lists optional modules it imports lazily;
        ``extra`` names the ``backstream[extra]`` that installs them."""
        self._registry._add(
            Entry(
                name=name,
                family=self._registry.family,
                factory=factory,
                provider=self._provider,
                version=self._version,
                requires=tuple(requires),
                extra=extra,
            )
        )


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
