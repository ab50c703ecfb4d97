"""Issue 6: wall time of one ``backstream wal-push`` of a 16 MiB WAL segment, interpreter start-up included.

Run: ``python benchmarks/bench_wal_push.py [--reps 12]``; prints medians for wal-push (new segment),
a retried push of an identical segment, wal-fetch, and a bare ``python -c pass`` for reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import benchlib

BACKSTREAM = str(Path(sys.executable).with_name("backstream"))


def segment() -> bytes:
    """16 MiB shaped like busy WAL: record-like text with a quarter of incompressible bytes."""
    block = (b"INSERT row data " * 400)[:6000] + os.urandom(2192)
    return (block * (16 * 1024 * 1024 // len(block) + 1))[: 16 * 1024 * 1024]


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=12)
    args = parser.parse_args()
    benchlib.precompile()
    with tempfile.TemporaryDirectory() as tmp:
        repo = f"{tmp}/repo"
        subprocess.run([BACKSTREAM, "init", "--repo", repo], check=True, stdout=subprocess.DEVNULL)
        data = segment()
        push, retry, fetch, bare = [], [], [], []
        for i in range(args.reps):
            path = f"{tmp}/00000001000000000000{i + 16:04X}"
            Path(path).write_bytes(data)
            push.append(timed([BACKSTREAM, "wal-push", "--repo", repo, path]))
            retry.append(timed([BACKSTREAM, "wal-push", "--repo", repo, path]))
            fetch.append(timed([BACKSTREAM, "wal-fetch", "--repo", repo, Path(path).name, f"{tmp}/fetched"]))
            bare.append(timed([sys.executable, "-c", "pass"]))
        for label, values in (
            ("wal-push", push),
            ("wal-push retry", retry),
            ("wal-fetch", fetch),
            ("python -c pass", bare),
        ):
            print(
                f"{label:16} median {statistics.median(values):6.0f} ms  min {min(values):4.0f}  max {max(values):4.0f}"
            )


if __name__ == "__main__":
    main()
