"""Child tools (pg_dump, mysqldump, psql, ...): each started in a session of its own, and killed
together with everything it started, so a wrapper script's children do not outlive a cancelled job.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from typing import Any

import anyio
from anyio.abc import Process


async def open_tool(argv: Sequence[str], **kwargs: Any) -> Process:
    """``anyio.open_process(argv, **kwargs)`` in a new session: the tool leads a process group
    that ``kill_tool`` can kill whole. It also has no controlling terminal, so it cannot stop to
    ask for a password on it (backstream passes credentials itself), and a Ctrl-C at the terminal
    reaches backstream, which then stops the tool, instead of both at once."""
    return await anyio.open_process(list(argv), start_new_session=True, **kwargs)


def kill_tool(process: Process) -> None:
    """SIGKILL a tool from ``open_tool`` and every process of its group, if it still runs.

    Only while the tool is not reaped: its pid (= the group's id) cannot be reused until then.
    (asyncio's child watcher may have reaped it before ``returncode`` is set; ``waitid`` with
    WNOWAIT asks the kernel without reaping.) A process not started by ``open_tool`` (no group
    of its own) is killed alone."""
    if process.returncode is not None or not _unreaped(process.pid):
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
        return
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.kill()
    except ProcessLookupError:
        pass


def _unreaped(pid: int) -> bool:
    """True while ``pid`` is our child, running or a zombie (its pid is still ours)."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True
