"""Child tools: started in a session of their own, killed with their whole process group, and
never signalled once reaped (when their pid may belong to someone else)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import anyio
from backstream import kill_tool, open_tool
from backstream.tools import _unreaped
from fixtures.processes import descendants


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_kill_tool_kills_the_tool_and_what_it_started() -> None:
    below: list[int] = []

    async def main() -> None:
        process = await open_tool(["sh", "-c", "sleep 300 & sleep 300; exit 0"])
        deadline = time.monotonic() + 10
        while len(descendants(process.pid)) < 2:
            assert time.monotonic() < deadline
            await anyio.sleep(0.02)
        below.extend([process.pid, *descendants(process.pid)])
        assert os.getpgid(process.pid) == process.pid  # a group of its own
        kill_tool(process)
        await process.aclose()  # waits, and closes its pipes while the loop still runs

    anyio.run(main)
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in below):
        assert time.monotonic() < deadline, below
        time.sleep(0.02)


def test_a_reaped_tool_is_never_signalled_again() -> None:
    async def main() -> None:
        process = await open_tool([sys.executable, "-c", "pass"])
        await process.wait()
        kill_tool(process)  # returncode is set: nothing happens, nothing raises
        await process.aclose()

    anyio.run(main)


def test_unreaped_tells_a_running_or_zombie_child_from_a_reaped_one() -> None:
    running = subprocess.Popen(["sleep", "300"])
    zombie = subprocess.Popen(["true"])
    try:
        while not gone(zombie.pid):  # exited, not reaped: still holds its pid
            time.sleep(0.01)
        assert _unreaped(running.pid) and _unreaped(zombie.pid)
        os.waitpid(zombie.pid, 0)  # reaped behind Popen's back, as asyncio's child watcher does
        assert not _unreaped(zombie.pid)
    finally:
        running.kill()
        running.wait()
