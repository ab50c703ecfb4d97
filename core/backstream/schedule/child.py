"""One job attempt as a child process: started, timed out or cancelled, and stopped cleanly.

The child is ``backstream`` itself, in a session of its own. Stopping it is SIGTERM first, which the
command line turns into a cancelled job (partial objects removed, lock released, dump tools
killed), then SIGKILL of its process group if it has not exited after ``kill_after`` seconds.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import anyio
from anyio.abc import ByteReceiveStream, Process

STDOUT_LIMIT = 8 * 1024 * 1024
"""Bytes of a child's stdout kept (its ``--json`` document); the rest is read and dropped."""
STDERR_TAIL = 64 * 1024
"""Bytes kept from the end of a child's stderr (its last lines hold the error)."""
DRAIN_AFTER_EXIT = 5.0
"""Seconds to keep reading after the child exited (a grandchild may still hold its pipes)."""


@dataclass(frozen=True)
class ChildResult:
    """How a child ended: its exit status (negative: the signal), output, and whether it ran out of time."""

    returncode: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


async def run_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    kill_after: float = 30.0,
) -> ChildResult:
    """Run ``argv`` to its end, or until ``timeout`` seconds (then stop it and report ``timed_out``).

    Cancelled (the daemon shuts down), it stops the child the same way, shielded, then re-raises."""
    environment = {**os.environ, **(env or {})}
    out = bytearray()
    err = bytearray()
    timed_out = False
    process = await anyio.open_process(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
        start_new_session=True,
    )
    async with process, anyio.create_task_group() as tg:
        drained = anyio.Event()
        tg.start_soon(_drain_both, process, out, err, drained)
        try:
            with anyio.move_on_after(math.inf if timeout is None else timeout) as scope:
                await process.wait()
            if scope.cancelled_caught:
                timed_out = True
                await stop_child(process, kill_after)
            with anyio.move_on_after(DRAIN_AFTER_EXIT):
                await drained.wait()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await stop_child(process, kill_after)
            raise
        finally:
            tg.cancel_scope.cancel()
    returncode = process.returncode
    assert returncode is not None
    return ChildResult(returncode, bytes(out), bytes(err), timed_out)


async def stop_child(process: Process, kill_after: float) -> None:
    """SIGTERM the child (a clean cancel), then SIGKILL its process group after ``kill_after`` s."""
    if process.returncode is not None:
        return
    try:
        process.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        return
    with anyio.move_on_after(kill_after):
        await process.wait()
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    await process.wait()


async def _drain_both(process: Process, out: bytearray, err: bytearray, done: anyio.Event) -> None:
    async with anyio.create_task_group() as tg:
        if process.stdout is not None:
            tg.start_soon(_drain, process.stdout, out, STDOUT_LIMIT, False)
        if process.stderr is not None:
            tg.start_soon(_drain, process.stderr, err, STDERR_TAIL, True)
    done.set()


async def _drain(stream: ByteReceiveStream, buffer: bytearray, limit: int, tail: bool) -> None:
    """Read ``stream`` to its end, keeping at most ``limit`` bytes (the first, or the last if ``tail``)."""
    async for chunk in stream:
        if tail:
            buffer += chunk
            if len(buffer) > limit:
                del buffer[: len(buffer) - limit]
        elif len(buffer) < limit:
            buffer += chunk[: limit - len(buffer)]
