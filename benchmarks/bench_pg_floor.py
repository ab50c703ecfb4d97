"""What a minimal Python program reaches against the shell pipeline of issue 4, on the same database:
the floor under ``backstream backup``'s wall time on this machine (no plugins, catalog, repository or fsync).

Run: ``python benchmarks/bench_pg_floor.py [--size 256MiB] [--reps 5]`` (results/pg_floor.json). The
minimal program (``FLOOR`` below) spawns pg_dump, reads its stdout in a thread, compresses with
zstandard level 3 and encrypts with ChaCha20-Poly1305 into a file: the work of the shell pipeline
and nothing else, in ~45 lines.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
import bench_pg_backup as pg
import benchlib
import datagen

from tests.fixtures.postgres import start_postgres

FLOOR = r'''
import os, queue, subprocess, sys, threading
import zstandard
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

pg_dump, url, out_path = sys.argv[1:]
process = subprocess.Popen([pg_dump, "--no-password", "--dbname=" + url], stdout=subprocess.PIPE, bufsize=0)
compressor = zstandard.ZstdCompressor(level=3, write_checksum=True).compressobj()
aead = ChaCha20Poly1305(os.urandom(32))
chunks = queue.Queue(8)

def read():
    while True:
        data = process.stdout.read(256 * 1024)
        chunks.put(data)
        if not data:
            return

reader = threading.Thread(target=read)
reader.start()
counter = 0
with open(out_path, "wb") as out:
    def seal(data):
        global counter
        for start in range(0, len(data), 65536):
            out.write(aead.encrypt(counter.to_bytes(12, "big"), data[start : start + 65536], None))
            counter += 1
    while data := chunks.get():
        seal(compressor.compress(data))
    seal(compressor.flush())
reader.join()
sys.exit(process.wait())
'''


def floor_backup(server: Any, dbname: str, script: Path, out: Path) -> dict[str, Any]:
    return pg.measure([sys.executable, str(script), f"{server.bindir}/pg_dump", server.url(dbname), str(out)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=datagen.parse_size, default=datagen.parse_size("256MiB"))
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    script = work / "floor.py"
    script.write_text(FLOOR)
    runs: dict[str, list[dict[str, Any]]] = {"shell": [], "minimal python": []}
    try:
        with start_postgres() as server:
            pg.SERVER_PID.append(int((Path(server.data_dir) / "postmaster.pid").read_text().split()[0]))
            pg.load_database(server, "bench", args.size)
            for rep in range(args.reps):
                for name, run in (
                    ("shell", functools.partial(pg.shell_backup, server, "bench", work / "shell.out")),
                    ("minimal python", functools.partial(floor_backup, server, "bench", script, work / "py.out")),
                ):
                    result = pg.undisturbed(run)
                    result.pop("stdout", None)
                    runs[name].append(result)
                    print(f"{rep + 1} {name}: {result}", flush=True)
    finally:
        for path in work.iterdir():
            path.unlink()
        os.rmdir(work)
    base = statistics.median(r["wall"] for r in runs["shell"])
    summary = [
        {
            "method": name,
            "median_wall": statistics.median(r["wall"] for r in samples),
            "vs_shell": round(statistics.median(r["wall"] for r in samples) / base, 3),
            "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in samples),
            "walls": [r["wall"] for r in samples],
        }
        for name, samples in runs.items()
    ]
    print(f"saved {benchlib.save('pg_floor', {'machine': benchlib.machine(), 'summary': summary, 'runs': runs})}")
    for row in summary:
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
