"""Runtime helpers every layer may use: running a coroutine function on the event loop backstream
needs, and the stop signals (SIGTERM, SIGHUP) that cancel it the way Ctrl-C does.

The command line and plugins' commands call ``run_async``; nothing here knows about argparse.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import TypeVar

import anyio

T = TypeVar("T")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that stop a command the way Ctrl-C does: the job is cancelled, so its dump tools
(each in a process group of its own, see backstream.tools) are killed, partial objects are
removed and the repository lock is released, instead of the process dying on the spot."""


class StopSignals:
    """The handler of the stop signals while a command runs (``install`` sets it up).

    Outside the event loop a stop signal raises ``KeyboardInterrupt`` like Ctrl-C. Inside
    ``run_async`` it cancels the job's main task, as asyncio's runner does for Ctrl-C, and never
    raises in the middle of whatever code the loop was running: that would tear a cancel scope.
    ``run_async`` then raises ``KeyboardInterrupt`` once the job has cleaned up. Only the first
    signal counts: a second SIGTERM (say, from a service manager) must not cut cleanup short."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._task: asyncio.Task[object] | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.received:
            return
        self.received.append(signum)
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            task.get_loop().call_soon_threadsafe(lambda: None)  # wake the loop up if it sleeps in select()
            return
        on_sigint = signal.getsignal(signal.SIGINT)
        if callable(on_sigint):  # Python's default handler (raises KeyboardInterrupt), or the caller's own
            on_sigint(signal.SIGINT, frame)
        raise KeyboardInterrupt  # SIGINT ignored or at its default: stop all the same

    @contextlib.contextmanager
    def cancelling(self, task: asyncio.Task[object]) -> Iterator[None]:
        """While the block runs, a stop signal cancels ``task``."""
        self._task = task
        try:
            yield
        finally:
            self._task = None

    @classmethod
    @contextlib.contextmanager
    def install(cls) -> Iterator[StopSignals]:
        """Handle the stop signals left at their default action while the block runs.

        One that the caller ignores (``nohup``, ``trap '' TERM``) stays ignored. Outside the main
        thread nothing is installed (Python delivers signals to the main thread only)."""
        stop = cls()
        if threading.current_thread() is not threading.main_thread():
            yield stop
            return
        previous = {
            number: signal.signal(number, stop) for number in STOP_SIGNALS if signal.getsignal(number) == signal.SIG_DFL
        }
        try:
            yield stop
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)


def _installed_stop_signals() -> StopSignals | None:
    if threading.current_thread() is not threading.main_thread():
        return None
    for number in STOP_SIGNALS:
        handler = signal.getsignal(number)
        if isinstance(handler, StopSignals):
            return handler
    return None


def run_async(func: Callable[[], Awaitable[T]]) -> T:
    """Run one coroutine function on asyncio (the backend backstream needs: psycopg and s3fs).

    Under ``StopSignals.install()`` a stop signal cancels it and it raises ``KeyboardInterrupt``
    after the cancellation has run its clean-up."""
    stop = _installed_stop_signals()
    if stop is None:
        return anyio.run(func, backend="asyncio")

    async def main() -> T:
        task = asyncio.current_task()
        assert task is not None
        with stop.cancelling(task):
            return await func()

    try:
        return anyio.run(main, backend="asyncio")
    except asyncio.CancelledError:
        if stop.received:
            raise KeyboardInterrupt from None
        raise
