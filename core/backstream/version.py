"""The backstream version: the one place it is written (pyproject.toml reads it from here).

A literal, not ``importlib.metadata``: reading the installed metadata costs ~30 ms at every start
of the command line, and a source tree that is not installed knows its version too.
"""

from __future__ import annotations

__version__ = "0.1.0"
