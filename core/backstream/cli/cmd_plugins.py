"""``backstream plugins``: every registered plugin with its family, provider, version, availability.

``--json`` prints a list of objects for scripts.
"""

from __future__ import annotations

import argparse
import json

from backstream.plugins import Plugins

NAME = "plugins"
HELP = "list installed plugins and whether they are usable"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    plugins = Plugins.load()
    rows = [
        {
            "name": entry.name,
            "family": entry.family,
            "provided_by": entry.provider,
            "version": entry.version,
            "available": entry.available,
            "reason": entry.unavailable_reason,
        }
        for entry in plugins.entries()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headers = ("FAMILY", "NAME", "PROVIDED BY", "VERSION", "STATUS")
    table = [
        (
            r["family"],
            r["name"],
            r["provided_by"],
            r["version"],
            "available" if r["available"] else f"unavailable: {r['reason']}",
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in [headers, *table]) for i in range(len(headers) - 1)]
    for row in [headers, *table]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + str(row[-1]))
    return 0
