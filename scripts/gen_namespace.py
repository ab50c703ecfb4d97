#!/usr/bin/env python3
"""Writes the ``if TYPE_CHECKING:`` block of core/backstream/__init__.py from its ``_LAZY`` table.

``_LAZY`` (public name -> defining module) is the one table of the public namespace: at run time
``__getattr__`` imports from it and ``__all__`` is its keys; type checkers read the generated
block (``from module import Name as Name``: an explicit re-export). ``--check`` exits 1 when the
block is out of date (tests/core/test_namespace.py runs it).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

INIT = Path(__file__).resolve().parent.parent / "core" / "backstream" / "__init__.py"
BEGIN = "if TYPE_CHECKING:  # generated from _LAZY by scripts/gen_namespace.py; do not edit by hand\n"
END = "# end of the generated block\n"


def lazy_table(source: str) -> dict[str, str]:
    """The ``_LAZY = {...}`` literal, read as text (the file may not parse while its block is empty)."""
    start = source.index("_LAZY: dict[str, str] = {")
    end = source.index("\n}\n", start) + 2
    value = ast.literal_eval(source[source.index("{", start) : end])
    if not isinstance(value, dict):
        raise SystemExit(f"{INIT}: _LAZY is not a dict literal")
    return {str(k): str(v) for k, v in value.items()}


def _isort_key(name: str) -> tuple[int, str]:
    """isort's (and ruff's) order within one module: CONSTANTS, then Classes, then functions."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


def block(table: dict[str, str]) -> str:
    by_module: dict[str, list[str]] = defaultdict(list)
    for name, module in table.items():
        by_module[module].append(name)
    lines = [BEGIN]
    for module in sorted(by_module):
        lines += [f"    from {module} import {name} as {name}\n" for name in sorted(by_module[module], key=_isort_key)]
    lines.append(END)
    return "".join(lines)


def generated(source: str) -> str:
    start, end = source.index(BEGIN), source.index(END) + len(END)
    return source[:start] + block(lazy_table(source)) + source[end:]


def main() -> int:
    source = INIT.read_text()
    wanted = generated(source)
    if "--check" in sys.argv[1:]:
        if wanted != source:
            print(f"{INIT} is out of date: run scripts/gen_namespace.py", file=sys.stderr)
            return 1
        return 0
    INIT.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
