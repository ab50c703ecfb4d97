"""Restore verification: levels, the backup-time catalog, checks of restored databases, drills.

Import from the submodules (``backstream.verify.drill``, ``.catalog``, ``.report``); this package
imports nothing itself, so the backup job can use ``.catalog`` without an import cycle.
"""
