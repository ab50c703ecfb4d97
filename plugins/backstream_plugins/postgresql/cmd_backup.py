"""``backstream backup postgresql://... --physical``: the option that picks the physical source.

It sets ``backup``'s ``source_plugin`` destination to ``postgresql-physical`` (pg_basebackup).
"""

from __future__ import annotations

import argparse

PHYSICAL_SOURCE = "postgresql-physical"


class BackupOptions:
    """``--physical`` for ``backup`` (registered by the postgresql plugin as ``backup:postgresql``)."""

    extends = "backup"

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--physical",
            dest="source_plugin",
            action="store_const",
            const=PHYSICAL_SOURCE,
            help="PostgreSQL: a physical base backup with pg_basebackup for point-in-time recovery (docs/pitr.md)",
        )

    def check(self, args: argparse.Namespace) -> None:
        return None
