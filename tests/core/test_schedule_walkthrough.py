"""docs/scheduling.md's five-minute walkthrough, run as written: its ``sh walkthrough`` blocks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "scheduling.md"


def walkthrough() -> str:
    blocks = re.findall(r"^```sh walkthrough\n(.*?)^```$", DOC.read_text(), flags=re.S | re.M)
    assert blocks, "docs/scheduling.md has no walkthrough block"
    return "\n".join(blocks)


def test_the_walkthrough_gets_a_daemon_running_one_schedule(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKSTREAM_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # this venv's backstream
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walkthrough()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"^nightly: success backup \S+ in [\d.]+ s$", out, flags=re.M), out
    assert "nightly (backup, '0 2 * * *' UTC)" in out and "newest good" in out
    assert re.search(r"^BACKSTREAM OK - 1 of 1 jobs fresh \| 'nightly_age'=\d+s;74880;93600;0$", out, flags=re.M)
    assert (tmp_path / "state" / "history.jsonl").exists()
    assert "daemon_stop" in result.stderr  # the daemon ended cleanly on kill (SIGTERM)
