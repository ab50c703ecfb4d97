"""The plugin manager: defaults, entry points, the autoload switch, validation and availability.

Plugins under test are small in-test objects, plus the sample package in tests/sample_plugin/.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest
from backstream import (
    Codec,
    MissingDependencyError,
    PluginError,
    Plugins,
    Register,
    UnknownPluginError,
    hookimpl,
    make_plugin_manager,
)
from backstream.plugins import BUILTIN_LISTENERS, BUILTIN_PLUGINS, DEFAULT_PLUGINS, FAMILIES, LIFECYCLE_HOOKS


class NullFactory:
    extension = ""

    def __init__(self, name: str) -> None:
        self.name = name

    def compressor(self, options: Mapping[str, str]) -> Codec:
        raise NotImplementedError

    def decompressor(self) -> Codec:
        raise NotImplementedError


class Provides:
    """A plugin object registering one compressor by name."""

    def __init__(self, name: str, *, requires: tuple[str, ...] = (), extra: str | None = None) -> None:
        self.name, self.requires, self.extra = name, requires, extra

    @hookimpl
    def backstream_register_compressors(self, register: Register[Any]) -> None:
        register.add(self.name, NullFactory(self.name), requires=self.requires, extra=self.extra)


def only(*plugins: object, autoload: bool = False) -> Plugins:
    return Plugins(make_plugin_manager(defaults=(), autoload=autoload, extra_plugins=plugins))


def test_the_default_plugins_provide_six_codecs_and_fsspec_storage() -> None:
    plugins = Plugins.load(autoload=False)
    assert {"none", "gzip", "bz2", "xz", "zstd", "lz4"} <= set(plugins.compressors().names())
    assert "fsspec" in plugins.storages().names()
    providers = {entry.provider for entry in plugins.entries()}
    assert providers <= set(DEFAULT_PLUGINS)


def test_a_third_party_plugin_is_discovered_through_its_entry_point() -> None:
    plugins = Plugins.load(autoload=True)
    entry = plugins.compressors().entry("sample-reverse")
    assert entry.provider == "backstream-sample-plugin"
    assert entry.version == "1.2.3"


def test_the_autoload_switch_skips_third_party_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKSTREAM_DISABLE_PLUGIN_AUTOLOAD", "1")
    plugins = Plugins.load()
    assert "sample-reverse" not in plugins.compressors()
    assert "zstd" in plugins.compressors()


def test_a_name_registered_twice_is_an_error_naming_both_providers() -> None:
    plugins = only(Provides("dup"), Provides("dup"))
    with pytest.raises(PluginError, match="registered twice"):
        plugins.compressors()


def test_an_unknown_name_raises_and_lists_the_known_ones() -> None:
    plugins = only(Provides("alpha"), Provides("beta"))
    with pytest.raises(UnknownPluginError, match=r"unknown compressor 'gamma' \(known: alpha, beta\)"):
        plugins.compressors().get("gamma")


def test_a_plugin_with_a_missing_dependency_is_listed_unavailable_with_the_install_hint() -> None:
    plugins = only(Provides("fancy", requires=("no_such_module_xyz",), extra="fancy"))
    entry = plugins.compressors().entry("fancy")
    assert not entry.available
    assert entry.unavailable_reason is not None
    assert "pip install 'backstream[fancy]'" in entry.unavailable_reason


def test_using_a_plugin_with_a_missing_dependency_raises_the_install_hint() -> None:
    plugins = only(Provides("fancy", requires=("no_such_module_xyz",), extra="fancy"))
    with pytest.raises(MissingDependencyError, match=r"pip install 'backstream\[fancy\]'"):
        plugins.compressors().get("fancy")


def test_a_misspelled_hook_is_rejected_when_the_manager_is_built() -> None:
    class Misspelled:
        @hookimpl
        def backstream_register_compresors(self, register: Register[Any]) -> None:  # sic
            pass

    with pytest.raises(PluginError, match="unknown hook"):
        make_plugin_manager(defaults=(), autoload=False, extra_plugins=[Misspelled()])


@pytest.mark.parametrize("marker", [hookimpl(wrapper=True), hookimpl(hookwrapper=True)], ids=["wrapper", "hookwrapper"])
def test_a_hook_wrapper_is_refused_when_the_manager_is_built(marker: Any) -> None:
    """Each implementation is called on its own, so a wrapper would never run: it is an error."""

    class Wrapping:
        @marker
        def backstream_register_compressors(self, register: Register[Any]) -> Any:
            return (yield)

    with pytest.raises(PluginError, match="'Wrapping' implements backstream_register_compressors as a hook wrapper"):
        make_plugin_manager(defaults=(), autoload=False, extra_plugins=[Wrapping()])


def test_a_hook_wrapper_registered_on_the_manager_later_is_refused_when_called() -> None:
    class Wrapping:
        @hookimpl(wrapper=True)
        def backstream_register_compressors(self, register: Register[Any]) -> Any:
            return (yield)

    pm = make_plugin_manager(defaults=(), autoload=False)
    pm.register(Wrapping(), name="late")
    with pytest.raises(PluginError, match="'late' implements backstream_register_compressors as a hook wrapper"):
        Plugins(pm).compressors()


def test_a_plugin_that_raises_while_registering_is_reported_by_name() -> None:
    class Broken:
        @hookimpl
        def backstream_register_compressors(self, register: Register[Any]) -> None:
            raise RuntimeError("boom")

    plugins = only(Broken())
    with pytest.raises(PluginError, match="failed to register its compressors: boom"):
        plugins.compressors()


def test_no_plugin_manager_exists_at_import_time() -> None:
    code = (
        "import backstream, backstream.plugins, pluggy, gc; "
        "print(sum(isinstance(o, pluggy.PluginManager) for o in gc.get_objects()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_storage_is_chosen_by_protocol_with_a_wildcard_fallback() -> None:
    class Store:
        def __init__(self, name: str, protocols: frozenset[str]) -> None:
            self.name, self.protocols = name, protocols

        def open(self, url: str, options: Mapping[str, Any]) -> Any:
            return (self.name, url)

    class Stores:
        @hookimpl
        def backstream_register_storage(self, register: Register[Any]) -> None:
            register.add("any", Store("any", frozenset({"*"})))
            register.add("special", Store("special", frozenset({"sftp"})))

    plugins = only(Stores())
    assert plugins.open_storage("sftp://host/repo") == ("special", "sftp://host/repo")
    assert plugins.open_storage("s3://bucket/repo") == ("any", "s3://bucket/repo")
    assert plugins.open_storage("/local/path") == ("any", "/local/path")


def test_the_built_in_table_names_the_families_each_module_registers() -> None:
    """Lazy loading trusts BUILTIN_PLUGINS: a family missing there would silently lose plugins."""
    import importlib

    hooks = {hook: family for family, hook in FAMILIES.items()}
    for dotted, families in BUILTIN_PLUGINS.items():
        module = importlib.import_module(dotted)
        registered = {hooks[name] for name in dir(module) if name in hooks}
        assert registered == set(families), dotted


def test_the_built_in_listeners_are_exactly_the_modules_with_a_lifecycle_hook() -> None:
    """A job announces its events to BUILTIN_LISTENERS only: a built-in listener left out would never hear one."""
    import importlib

    listening = {
        dotted
        for dotted in BUILTIN_PLUGINS
        if any(hasattr(importlib.import_module(dotted), hook) for hook in LIFECYCLE_HOOKS)
    }
    assert listening == set(BUILTIN_LISTENERS)


def test_announcing_a_job_imports_no_built_in_that_does_not_listen() -> None:
    code = (
        "import sys; from datetime import datetime, timezone; "
        "from backstream.plugins import Plugins; from backstream.events import JobStarted; "
        "p = Plugins.load(autoload=False); p.compressors(); "
        "p.job_started(JobStarted(job_id='b1', kind='backup', started_at=datetime.now(timezone.utc))); "
        "print(sorted(m for m in sys.modules if m.startswith('backstream_plugins.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)  # a list literal printed by the child
    assert "backstream_plugins.compress.zstd" in loaded
    assert not any(".notify." in name or ".kms." in name or ".mysql" in name for name in loaded), loaded


def test_built_ins_are_imported_only_when_their_family_is_first_used() -> None:
    code = (
        "import sys; from backstream.plugins import Plugins; p = Plugins.load(autoload=False); "
        "loaded = lambda: sorted(m for m in sys.modules if m.startswith('backstream_plugins.')); "
        "print(loaded()); p.compressors(); print(loaded())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "[]"
    after = eval(out[1])  # a list literal printed by the child
    assert "backstream_plugins.compress.zstd" in after
    assert not any(".kms." in name or ".cipher." in name or ".sources." in name for name in after), after


def test_lazily_loaded_built_ins_come_before_plugins_registered_earlier() -> None:
    class Late:
        @hookimpl
        def backstream_register_compressors(self, register: Register[Any]) -> None:
            register.add("late", NullFactory("late"))

    plugins = Plugins.load(autoload=False, extra_plugins=[Late()])
    names = [entry.name for entry in plugins.compressors().registered()]
    assert names[0] == "none" and names[-1] == "late", names
