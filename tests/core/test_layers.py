"""The core's layering: it imports no database driver, codec library or cloud SDK and no built-in
plugin, nothing below the CLI imports the CLI, and it names no database engine in its code (only
in docstrings and messages). Walks the source of core/backstream, so lazy imports inside functions
count too.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "core" / "backstream"

FORBIDDEN_ROOTS = frozenset(
    {"psycopg", "psycopg2", "pymysql", "sqlite3", "zstandard", "lz4", "boto3", "botocore", "azure", "google"}
    | {"backstream_plugins"}
)
"""Top-level packages the core must not import: drivers, codecs, cloud SDKs, the built-in plugins."""

ENGINE_WORDS = re.compile(r"postgres|psql|\bpg_|mysql|mariadb|sqlite|binlog|\bwal\b|psycopg|pymysql", re.IGNORECASE)

ALLOWED_NAMES = {
    ("plugins.py", "BUILTIN_PLUGINS"): "the table of built-in plugin modules, imported lazily by name",
    ("__init__.py", "_MOVED"): "deprecated aliases for names that moved into engine plugins (one release)",
}
"""Module-level tables that may name engine plugin modules, and why."""


def core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def relative(path: Path) -> str:
    return str(path.relative_to(CORE))


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_the_walk_sees_every_core_module() -> None:
    modules = {relative(path) for path in core_modules()}
    assert {"__init__.py", "plugins.py", "jobs/backup.py", "repository/repo.py", "cli/main.py"} <= modules


@pytest.mark.parametrize("path", core_modules(), ids=relative)
def test_the_core_imports_no_driver_codec_sdk_or_builtin_plugin(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = [
        f"line {line}: import {name}" for line, name in imported_modules(tree) if name.split(".")[0] in FORBIDDEN_ROOTS
    ]
    assert not bad, f"{relative(path)} imports what only plugins may: {bad}"


@pytest.mark.parametrize("path", [p for p in core_modules() if relative(p).split("/")[0] != "cli"], ids=relative)
def test_nothing_below_the_cli_imports_the_cli(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = [f"line {line}: {name}" for line, name in imported_modules(tree) if name.startswith("backstream.cli")]
    assert not bad, f"{relative(path)} imports the CLI layer: {bad}"


def _prose(tree: ast.AST) -> set[int]:
    """ids of string nodes that are prose: docstrings, attribute docstrings, call arguments
    (messages, log lines, help texts)."""
    prose: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            prose.add(id(node.value))
        elif isinstance(node, ast.Call):
            for argument in [*node.args, *(keyword.value for keyword in node.keywords)]:
                prose.update(id(sub) for sub in ast.walk(argument) if isinstance(sub, ast.Constant | ast.JoinedStr))
    return prose


def _allowed(tree: ast.Module, path: Path) -> set[int]:
    allowed: set[int] = set()
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for target in targets:
            if isinstance(target, ast.Name) and (path.name, target.id) in ALLOWED_NAMES:
                allowed.update(id(sub) for sub in ast.walk(node))
    return allowed


def engine_names(source: str, path: Path) -> list[str]:
    tree = ast.parse(source)
    skip = _prose(tree) | _allowed(tree, path)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        name: str | None = None
        if isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = node.name
        elif isinstance(node, ast.arg):
            name = node.arg
        elif isinstance(node, ast.alias):
            name = node.asname or node.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value
        if name is not None and ENGINE_WORDS.search(name.replace("_", " ")):
            found.append(f"line {getattr(node, 'lineno', '?')}: {name[:60]!r}")
    return found


def test_the_engine_name_check_finds_what_it_must() -> None:
    code = (
        'def f(kind):\n    """postgres is fine here."""\n'
        '    if kind == "postgresql":\n        raise ValueError("not mysql")\n'
    )
    assert engine_names(code, Path("x.py")) == ["line 3: 'postgresql'"]
    assert engine_names("import pymysql\n", Path("x.py")) == ["line 1: 'pymysql'"]
    assert engine_names("wal_record = 1\n", Path("x.py")) == ["line 1: 'wal_record'"]


@pytest.mark.parametrize("path", core_modules(), ids=relative)
def test_the_core_names_no_engine_outside_docstrings_and_messages(path: Path) -> None:
    found = engine_names(path.read_text(encoding="utf-8"), path)
    assert not found, f"{relative(path)} names a database engine in its code: {found}"


def test_importing_every_core_module_loads_no_driver_or_codec() -> None:
    program = f"""
import importlib, json, pkgutil, sys
import backstream
for info in pkgutil.walk_packages(backstream.__path__, "backstream."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & set({sorted(FORBIDDEN_ROOTS)!r}))))
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []


def test_collecting_every_plugins_commands_imports_no_job_storage_or_event_loop() -> None:
    """The CLI collects every plugin's commands at start-up (to find the one typed), so a command's
    registration must be cheap: its module imports the work when it runs (``wal-push`` paid 46 ms
    for the sqlite ``demo`` command's imports before this was checked)."""
    program = """
import json, sys
from backstream.plugins import Plugins
names = [entry.name for entry in Plugins.load().commands().registered()]
heavy = ("backstream.jobs", "backstream.verify", "backstream.crypto", "anyio", "asyncio", "fsspec", "sqlite3")
print(json.dumps([names, sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith(heavy))]))
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    names, loaded = json.loads(result.stdout)
    assert {"wal-push", "binlog-archive", "demo"} <= set(names)
    assert loaded == []
