"""The backstream version: the one place it is written (pyproject.toml reads it from here).

A literal, not a lookup in the installed metadata: no search through the installed distributions
for it at start-up, and a source tree that is not installed knows its version too.
"""

from __future__ import annotations

__version__ = "0.1.0"
