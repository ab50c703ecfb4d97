"""Start-up cost of the CLI: interpreter start + imports + ``Plugins.load()`` as a user pays them.

Run: ``python benchmarks/bench_startup.py [--rounds 7]``. Alternates, each round, a bare
``python -c pass``, ``backstream --version``, ``backstream list`` of a local repository holding
20 backups, and ``backstream wal-push`` of a new 16 MiB segment (zstd, not encrypted); then, in
one process, ``Plugins.load()`` and the first lookup of each family. Prints medians with the
spread (min-max) of wall time and peak RSS. Figures go in benchmarks/README.md ("Start-up").
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
SEGMENT = 16 * 1024 * 1024
TIME = "/usr/bin/time"  # GNU time (Debian package time)


def segment() -> bytes:
    """16 MiB shaped like busy WAL: record-like text with a quarter of incompressible bytes."""
    block = (b"INSERT row data " * 400)[:6000] + os.urandom(2192)
    return (block * (SEGMENT // len(block) + 1))[:SEGMENT]


def measured(argv: list[str]) -> tuple[float, float]:
    """Wall time (ms) and peak RSS (MiB, GNU time's %M: the exec'd program's own, not the
    forked copy of this process that ru_maxrss would count) of one run of ``argv``."""
    started = time.perf_counter()
    done = subprocess.run([TIME, "-f", "%M", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed with exit status {done.returncode}: {done.stderr.strip()}")
    return wall, int(done.stderr.strip().splitlines()[-1]) / 1024


def in_process() -> dict[str, float]:
    """``Plugins.load()`` and each family's first lookup, in a fresh interpreter (ms)."""
    code = (
        "import time; t0 = time.perf_counter(); from backstream.plugins import Plugins; t1 = time.perf_counter(); "
        "p = Plugins.load(); t2 = time.perf_counter(); p.compressors().get('zstd'); p.storages(); p.kms(); "
        "p.ciphers(); p.sources(); t3 = time.perf_counter(); "
        "print((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return dict(zip(("import backstream.plugins", "Plugins.load()", "first lookups"), map(float, out), strict=True))


def spread(values: list[float], unit: str) -> str:
    return f"{statistics.median(values):7.1f} {unit} ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    benchlib.precompile()
    with tempfile.TemporaryDirectory() as tmp:
        repo = f"{tmp}/repo"
        database = f"{tmp}/small.db"
        subprocess.run(
            [sys.executable, "-c", f"import sqlite3; sqlite3.connect({database!r}).execute('create table t (n)')"]
        )
        subprocess.run([BACKSTREAM, "init", "--repo", repo], check=True, stdout=subprocess.DEVNULL)
        for _ in range(20):
            subprocess.run(
                [BACKSTREAM, "backup", f"sqlite://{database}", "--repo", repo], check=True, stdout=subprocess.DEVNULL
            )
        data = segment()
        cases: dict[str, list[tuple[float, float]]] = {
            "python -c pass": [],
            "--version": [],
            "list": [],
            "wal-push": [],
        }
        loads: list[dict[str, float]] = []
        for index in range(args.rounds):
            wal = Path(tmp, f"00000001000000000000{index + 16:04X}")
            wal.write_bytes(data)
            benchlib.warm(wal)
            cases["python -c pass"].append(measured([sys.executable, "-c", "pass"]))
            cases["--version"].append(measured([BACKSTREAM, "--version"]))
            cases["list"].append(measured([BACKSTREAM, "list", "--repo", repo]))
            cases["wal-push"].append(measured([BACKSTREAM, "wal-push", "--repo", repo, str(wal)]))
            loads.append(in_process())
    facts = benchlib.machine()
    print(", ".join(f"{key}: {value}" for key, value in facts.items() if not isinstance(value, dict)))
    print(f"{'command':<16} {'wall (median, min-max)':<30} peak RSS")
    for name, runs in cases.items():
        walls, rss = [w for w, _ in runs], [r for _, r in runs]
        print(f"{name:<16} {spread(walls, 'ms'):<30} {spread(rss, 'MiB')}")
    for step in loads[0]:
        print(f"{step:<28} {spread([load[step] for load in loads], 'ms')}")


if __name__ == "__main__":
    main()
