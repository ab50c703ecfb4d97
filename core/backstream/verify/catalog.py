"""The verification catalog recorded at backup time: tables, row counts, columns, indexes,
constraints and content checksums, taken by the engine's check plugin from the source database.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backstream.errors import BackstreamError, ConfigError
from backstream.plugins import Plugins
from backstream.protocols import Check
from backstream.repository.ids import format_time, utc_now
from backstream.verify.report import check_level

log = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 1_000_000
"""Tables with more rows get no content checksum at backup time (row counts are still recorded)."""


@dataclass(frozen=True)
class CatalogOptions:
    """What a backup records for later verification: ``level`` (``off``, ``quick``, ``standard``,
    ``comprehensive``) and the row limit above which a table's content checksum is skipped
    (None: no limit)."""

    level: str = "comprehensive"
    max_rows: int | None = DEFAULT_MAX_ROWS


def checker(plugins: Plugins, kind: str) -> Check:
    """The check plugin for backups made by source plugin ``kind``."""
    registry = plugins.checks()
    if kind not in registry:
        raise ConfigError(f"no verification checks are installed for {kind} backups")
    return registry.get(kind)


async def capture_catalog(
    plugins: Plugins, kind: str, url: str, options: CatalogOptions, *, content: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The catalog of the source database, for the manifest; a failure is recorded, never fatal.
    ``content``: per-table rows and checksums the source read off its own dump (see JobContext)."""
    if options.level == "off":
        return None
    check_level(options.level)
    if kind not in plugins.checks():
        return None  # no check plugin for this kind of backup (e.g. physical base backups)
    try:
        check = checker(plugins, kind)
        if content:
            catalog = await check.inspect(url, level=options.level, max_rows=options.max_rows, content=content)
        else:
            catalog = await check.inspect(url, level=options.level, max_rows=options.max_rows)
    except BackstreamError as exc:
        log.warning("could not record the verification catalog of the backup: %s", exc)
        return {"error": f"catalog not recorded: {' '.join(str(exc).split())}"}
    return {**catalog, "level": options.level, "captured_at": format_time(utc_now())}
