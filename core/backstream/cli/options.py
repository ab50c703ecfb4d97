"""Pieces the repository commands share: ``--repo`` (or BACKSTREAM_REPO), storage options, JSON output.

Also byte formatting and the progress line drawn on stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from backstream.cli.progress_display import ProgressDisplay
from backstream.errors import ConfigError
from backstream.plugins import Plugins
from backstream.repository import Repository
from backstream.runtime import run_async as run_async  # re-exported: the command modules' helper

REPO_ENV = "BACKSTREAM_REPO"


def add_repo_argument(parser: argparse.ArgumentParser) -> None:
    """``--repo URL`` (default: $BACKSTREAM_REPO) and ``--storage-option KEY=VALUE``."""
    parser.add_argument(
        "--repo",
        metavar="URL",
        default=None,
        help=f"repository URL: a local path, file://, s3://bucket/prefix, ... (default: ${REPO_ENV})",
    )
    parser.add_argument(
        "--storage-option",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="an option for the storage plugin, e.g. endpoint_url=http://127.0.0.1:9000 (repeatable)",
    )


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def repo_url(args: argparse.Namespace) -> str:
    """The repository URL from ``--repo`` or BACKSTREAM_REPO; neither is a one-line error."""
    url: str | None = args.repo or os.environ.get(REPO_ENV)
    if not url:
        raise ConfigError(f"no repository given: pass --repo URL or set {REPO_ENV}")
    return url


def key_values(pairs: Sequence[str], what: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` as a dict; anything without ``=`` is a one-line error."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad {what} {pair!r}: expected KEY=VALUE")
        result[key.strip()] = value
    return result


def storage_options(args: argparse.Namespace) -> dict[str, Any]:
    return dict(key_values(args.storage_option, "storage option"))


async def open_repository(args: argparse.Namespace, plugins: Plugins) -> Repository:
    storage = plugins.open_storage(repo_url(args), **storage_options(args))
    return await Repository.open(storage)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def human_bytes(size: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    value = float(size)
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class ProgressLine(ProgressDisplay):
    """The progress display of commands that take no --progress options: drawn when ``enabled``
    and the stream is a terminal. New commands use ``progress_display(label, args)``."""

    def __init__(self, label: str, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr
        super().__init__(label, enabled=enabled and stream.isatty(), stream=stream)
