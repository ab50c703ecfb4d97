"""One test per hookspec (named ``test_hook_<hook name>``), plus the meta-test that enforces it.

The meta-test also checks that docs/plugins.md shows each hook's exact signature.
"""

from __future__ import annotations

import inspect
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backstream import JobFailed, JobFinished, JobStarted, Plugins, Register, hookimpl, hookspecs, make_plugin_manager

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def only(*plugins: object) -> Plugins:
    return Plugins(make_plugin_manager(defaults=(), autoload=False, extra_plugins=plugins))


class Marker:
    """Any object will do as a registered factory for these tests."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.protocols = frozenset({"test"})


def registering(hook: str, name: str) -> object:
    """A plugin object whose ``hook`` registers ``Marker(name)``."""

    def impl(self: object, register: Register[Any]) -> None:
        register.add(name, Marker(name))

    impl.__name__ = hook
    return type("Plugin", (), {hook: hookimpl(impl)})()


def test_hook_backstream_register_sources() -> None:
    plugins = only(registering("backstream_register_sources", "pg"))
    assert plugins.sources().get("pg").name == "pg"


def test_hook_backstream_register_compressors() -> None:
    plugins = only(registering("backstream_register_compressors", "zz"))
    assert plugins.compressors().get("zz").name == "zz"


def test_hook_backstream_register_ciphers() -> None:
    plugins = only(registering("backstream_register_ciphers", "c1"))
    assert plugins.ciphers().get("c1").name == "c1"


def test_hook_backstream_register_kms() -> None:
    plugins = only(registering("backstream_register_kms", "vault"))
    assert plugins.kms().get("vault").name == "vault"


def test_hook_backstream_register_storage() -> None:
    plugins = only(registering("backstream_register_storage", "st"))
    assert plugins.storages().get("st").name == "st"


def test_hook_backstream_register_checks() -> None:
    plugins = only(registering("backstream_register_checks", "rowcount"))
    assert plugins.checks().get("rowcount").name == "rowcount"


def test_hook_backstream_register_notifiers() -> None:
    plugins = only(registering("backstream_register_notifiers", "mail"))
    assert plugins.notifiers().get("mail").name == "mail"


def test_hook_backstream_register_archives() -> None:
    plugins = only(registering("backstream_register_archives", "journal"))
    assert plugins.archives().get("journal").name == "journal"
    assert [entry.name for entry in Plugins.load(autoload=False).archives().registered()][:2] == ["wal", "binlog"]


def test_hook_backstream_register_commands() -> None:
    plugins = only(registering("backstream_register_commands", "hello"))
    assert plugins.commands().get("hello").name == "hello"
    assert [entry.name for entry in Plugins.load(autoload=False).commands().registered()][:2] == [
        "wal-push",
        "wal-fetch",
    ]  # the built-in engines' commands come through the hook, in registration order


class Listener:
    def __init__(self) -> None:
        self.events: list[object] = []

    @hookimpl
    def backstream_job_started(self, event: JobStarted) -> None:
        self.events.append(event)

    @hookimpl
    def backstream_job_finished(self, event: JobFinished) -> None:
        self.events.append(event)

    @hookimpl
    def backstream_job_failed(self, event: JobFailed) -> None:
        self.events.append(event)


class BrokenListener:
    @hookimpl
    def backstream_job_started(self, event: JobStarted) -> None:
        raise RuntimeError("listener bug")


def test_hook_backstream_job_started() -> None:
    listener = Listener()
    event = JobStarted(job_id="j1", kind="backup", started_at=NOW)
    only(BrokenListener(), listener).job_started(event)  # a broken listener does not stop others
    assert listener.events == [event]


def test_hook_backstream_job_finished() -> None:
    listener = Listener()
    event = JobFinished(job_id="j1", kind="backup", started_at=NOW, finished_at=NOW)
    only(listener).job_finished(event)
    assert listener.events == [event]


def test_hook_backstream_job_failed() -> None:
    listener = Listener()
    event = JobFailed(job_id="j1", kind="restore", started_at=NOW, failed_at=NOW, error="no such backup")
    only(listener).job_failed(event)
    assert listener.events == [event]


def test_a_hook_implementation_may_accept_fewer_arguments() -> None:
    calls: list[str] = []

    class NoArgs:
        @hookimpl
        def backstream_job_started(self) -> None:
            calls.append("called")

    only(NoArgs()).job_started(JobStarted(job_id="j", kind="backup", started_at=NOW))
    assert calls == ["called"]


def hookspec_names() -> list[str]:
    return sorted(
        name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("backstream_")
    )


def test_every_hookspec_has_a_test_and_a_documented_signature() -> None:
    names = hookspec_names()
    assert len(names) == 12
    module = sys.modules[__name__]
    docs = DOCS.read_text(encoding="utf-8")
    for name in names:
        assert callable(getattr(module, f"test_hook_{name}", None)), f"no test_hook_{name} in {__file__}"
        signature = f"def {name}{inspect.signature(getattr(hookspecs, name))}".replace("'", "")
        assert signature in docs, f"docs/plugins.md lacks the signature: {signature}"
