"""The progress line on stderr, and the ``--quiet`` / ``--progress`` / ``--no-progress`` options.

Bytes, rate and elapsed time while the total is unknown; percent, bytes of the total and ETA once
a job tells it (``expect``: a restore from its manifest, ``check --read-data`` from the manifests
and archive records, a backup from its source's estimate, shown with ``~``). tqdm draws it; it is
imported only when a line is drawn, so a command run by a script or by PostgreSQL never pays for it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from backstream.errors import missing_dependency

REDRAW_INTERVAL = 0.1
"""Seconds between redraws: a 64 KiB chunk costs one integer add and one clock read otherwise."""
KNOWN = "{desc}: {percentage:3.0f}% |{bar}| {done} of {whole}  {speed}  ETA {remaining}"
ESTIMATED = "{desc}: ~{percentage:3.0f}% |{bar}| {done} of ~{whole}  {speed}  ETA ~{remaining}"
UNKNOWN = "{desc}: {done}  {speed}  {elapsed}"
"""tqdm bar formats; ``done``, ``whole`` and ``speed`` are backstream's own byte figures (KiB, MiB)."""


class ProgressDisplay:
    """A ``SizedProgress`` that draws one stderr line, at most every REDRAW_INTERVAL seconds.

    Callable from several threads at once. Draws nothing unless ``enabled``; ``close()`` draws
    the last figures and ends the line. An estimated total that the count passes is dropped:
    the line goes back to bytes and rate rather than claim more than 100 %.
    """

    def __init__(
        self,
        label: str,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._enabled = enabled
        self._stream = stream or sys.stderr
        self._clock = clock
        self._lock = threading.Lock()
        self._done = 0
        self._drawn = 0  # bytes the bar has been told about
        self._total: int | None = None
        self._estimate = False
        self._next_draw = 0.0
        self._bar: Any = None

    @property
    def done(self) -> int:
        """Bytes counted so far."""
        return self._done

    @property
    def enabled(self) -> bool:
        """Whether a line is drawn (a caller may skip work that only the display needs)."""
        return self._enabled

    def expect(self, total: int, *, estimate: bool = False) -> None:
        with self._lock:
            self._total, self._estimate = total, estimate

    def __call__(self, size: int) -> None:
        with self._lock:
            self._done += size
            if not self._enabled:
                return
            now = self._clock()
            if now < self._next_draw:
                return
            self._next_draw = now + REDRAW_INTERVAL
            self._draw()

    def close(self) -> None:
        """Draw the final figures (a finished estimate shows 100 %) and end the line."""
        with self._lock:
            if not self._enabled or (self._bar is None and not self._done):
                return
            if self._estimate and self._total is not None:
                self._total, self._estimate = max(self._done, 1), False  # the real size, now it is known
            self._draw()
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    def _draw(self) -> None:
        bar = self._bar if self._bar is not None else self._open()
        if bar is None:
            return
        total = self._total
        if total is not None and self._estimate and self._done > total:
            total = None  # the estimate was short: no percent beyond 100
        if total is None:
            bar.total, bar.bar_format = None, UNKNOWN
        else:
            bar.total, bar.bar_format = total, ESTIMATED if self._estimate else KNOWN
        bar.update(self._done - self._drawn)
        self._drawn = self._done
        bar.refresh()

    def _open(self) -> Any:
        try:
            bar_class = _bar_class()
        except ImportError:  # the optional extra is not installed: say so once, then stay silent
            self._enabled = False
            self._stream.write(f"backstream: no progress line: {missing_dependency('tqdm', 'progress')}\n")
            return None
        size = shutil.get_terminal_size()  # 80x24 where the terminal reports 0x0 (a fresh pty, script(1))
        self._bar = bar_class(
            desc=self._label,
            file=self._stream,
            mininterval=0,
            miniters=1,
            ncols=size.columns,
            nrows=size.lines,  # tqdm hides a bar below a terminal's last line: 0 lines would hide it
            leave=True,
            bar_format=UNKNOWN,
        )
        return self._bar


def _bar_class() -> Any:
    """tqdm, imported now, with our byte figures among its format fields."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    from backstream.cli.options import human_bytes

    class ByteBar(tqdm):  # type: ignore[misc]
        monitor_interval = 0  # no monitor thread: the display redraws itself

        @property
        def format_dict(self) -> dict[str, Any]:
            fields: dict[str, Any] = super().format_dict
            elapsed = fields.get("elapsed") or 0.0
            fields["done"] = human_bytes(fields["n"])
            fields["whole"] = human_bytes(fields["total"] or 0)
            fields["speed"] = f"{human_bytes(fields['n'] / elapsed)}/s" if elapsed > 0 else "-"
            return fields

    return ByteBar


def add_progress_arguments(parser: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` and ``--progress/--no-progress``."""
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress line and no summary (errors still print)"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw the progress line on stderr (default: when stderr is a terminal and not --json)",
    )


def progress_wanted(args: argparse.Namespace, stream: TextIO | None = None) -> bool:
    """Whether to draw: never with --quiet; as --progress/--no-progress say; else on a terminal
    unless --json."""
    if getattr(args, "quiet", False):
        return False
    forced: bool | None = getattr(args, "progress", None)
    if forced is not None:
        return forced
    return not getattr(args, "json", False) and (stream or sys.stderr).isatty()


def progress_display(label: str, args: argparse.Namespace) -> ProgressDisplay:
    """The display a command's options ask for."""
    return ProgressDisplay(label, enabled=progress_wanted(args))


def quiet(args: argparse.Namespace) -> bool:
    """True when the command should print no summary on stdout (``--quiet``)."""
    return bool(getattr(args, "quiet", False))
