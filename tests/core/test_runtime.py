"""run_async and the stop signals: SIGTERM/SIGHUP stop a job the way Ctrl-C does, with its clean-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import anyio
import pytest
from backstream.runtime import StopSignals, run_async


@pytest.fixture
def sigint_ignored() -> Iterator[None]:
    """As for a background job of a script (``backstream backup ... &``): asyncio installs no Ctrl-C handler."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _job_stopped_by_a_signal(steps: list[str], number: int = signal.SIGTERM) -> object:
    async def job() -> object:
        try:
            async with anyio.create_task_group() as group:  # a cancel scope torn by a stray raise would show here
                group.start_soon(anyio.sleep, 30)
                await anyio.sleep(0.05)
                os.kill(os.getpid(), number)
                await anyio.sleep(30)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0)  # clean-up may still await
                steps.append("cleaned up")
        return "not stopped"

    return run_async(job)


@pytest.mark.parametrize("ignored", [False, True], ids=["sigint-default", "sigint-ignored"])
def test_a_stop_signal_cancels_the_job_runs_its_clean_up_then_raises_keyboard_interrupt(
    request: pytest.FixtureRequest, ignored: bool
) -> None:
    if ignored:
        request.getfixturevalue("sigint_ignored")
    steps: list[str] = []
    with StopSignals.install() as stop, pytest.raises(KeyboardInterrupt):
        _job_stopped_by_a_signal(steps)
    assert steps == ["cleaned up"]
    assert stop.received == [signal.SIGTERM]


def test_only_the_first_stop_signal_counts_a_second_one_does_not_cut_clean_up_short() -> None:
    steps: list[str] = []

    async def job() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await anyio.sleep(30)
        finally:
            with anyio.CancelScope(shield=True):
                os.kill(os.getpid(), signal.SIGHUP)
                await anyio.sleep(0.05)
                steps.append("cleaned up")

    with StopSignals.install() as stop, pytest.raises(KeyboardInterrupt):
        run_async(job)
    assert steps == ["cleaned up"]
    assert stop.received == [signal.SIGTERM]


def test_the_handlers_are_put_back_afterwards_and_an_ignored_signal_stays_ignored() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with StopSignals.install():
            assert isinstance(signal.getsignal(signal.SIGTERM), StopSignals)
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_outside_the_event_loop_a_stop_signal_raises_keyboard_interrupt(sigint_ignored: None) -> None:
    with StopSignals.install() as stop, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGHUP)
        signal.pause()  # the handler runs here
    assert stop.received == [signal.SIGHUP]


def test_without_installed_stop_signals_run_async_leaves_them_alone() -> None:
    async def job() -> object:
        return signal.getsignal(signal.SIGTERM)

    assert run_async(job) == signal.SIG_DFL


def test_a_cancelled_job_without_a_stop_signal_is_not_reported_as_one() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from backstream.runtime import StopSignals, run_async

        async def job():
            asyncio.current_task().cancel()
            await asyncio.sleep(1)

        with StopSignals.install():
            try:
                run_async(job)
            except asyncio.CancelledError:
                sys.exit(3)
        """
    )
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 3
