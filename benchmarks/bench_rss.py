"""Peak memory (RSS) of one process streaming a generated dump through the Pipeline (zstd-3 by default).

Run: ``python benchmarks/bench_rss.py [--sizes 256MiB,1GiB] [--sinks null,file]``; each run is a fresh subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import benchlib
import datagen


class NullWriter:
    """A sink that counts and discards (like writing to /dev/null)."""

    def __init__(self) -> None:
        self.written = 0

    async def write(self, chunk: bytes) -> None:
        self.written += len(chunk)


@asynccontextmanager
async def null_sink() -> AsyncIterator[NullWriter]:
    yield NullWriter()


def child(size: int, codec: str, level: str, sink: str) -> dict[str, Any]:
    """Runs in the measured subprocess: set everything up, note the peak so far, stream, note it again."""
    import anyio
    from backstream import Pipeline, Transform, file_sink

    factory = benchlib.compressor_factory(codec)
    target = benchlib.scratch_dir() / f"rss-{os.getpid()}.out"
    result: dict[str, Any] = {}

    async def main() -> None:
        out = file_sink(target, fsync=False) if sink == "file" else null_sink()
        pipeline = Pipeline(
            datagen.generated_source(size), [Transform(f"{codec}-{level}", factory.compressor({"level": level}))], out
        )
        result["hwm_before_kib"] = benchlib.vm_hwm_kib()
        started = time.perf_counter()
        run = await pipeline.run()
        result["elapsed_s"] = time.perf_counter() - started
        result["bytes_in"] = run.bytes_in
        result["bytes_out"] = run.bytes_out

    try:
        anyio.run(main)
    finally:
        target.unlink(missing_ok=True)
    result["hwm_after_kib"] = benchlib.vm_hwm_kib()
    return result


def measure(size: int, codec: str, level: str, sink: str) -> dict[str, Any]:
    """Run one child; its peak RSS is the VmHWM it reads itself at the end. (wait4()'s ru_maxrss is
    kept for reference only: it can include the parent's RSS at fork time, before the exec.)"""
    argv = [sys.executable, __file__, "--child", str(size), "--codec", codec, "--level", level, "--sinks", sink]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"child failed with exit status {process.returncode}")
    report = json.loads(output)
    report.update(size=size, codec=f"{codec}-{level}", sink=sink, ru_maxrss_kib=usage.ru_maxrss)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256MiB,1GiB", help="comma-separated stream sizes")
    parser.add_argument("--codec", default="zstd")
    parser.add_argument("--level", default="3")
    parser.add_argument("--sinks", default="null,file", help="null (discard) and/or file (a real file in /tmp)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--save", default="rss", help="results/<name>.json ('' = do not save)")
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.codec, args.level, args.sinks)))
        return 0

    sizes = [datagen.parse_size(text) for text in args.sizes.split(",")]
    sinks = [sink.strip() for sink in args.sinks.split(",")]
    runs = []
    for sink in sinks:
        for size in sizes:
            if sink == "file" and size != max(sizes):
                continue  # the file sink is measured at the largest size only
            run = measure(size, args.codec, args.level, sink)
            runs.append(run)
            print(
                f"{datagen.format_size(size)} -> {sink}: peak RSS {run['hwm_after_kib'] / 1024:.1f} MiB "
                f"(before streaming {run['hwm_before_kib'] / 1024:.1f} MiB), {run['elapsed_s']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    rows = [
        [
            datagen.format_size(r["size"]),
            r["codec"],
            r["sink"],
            f"{r['hwm_before_kib'] / 1024:.1f}",
            f"{r['hwm_after_kib'] / 1024:.1f}",
            f"{(r['hwm_after_kib'] - r['hwm_before_kib']) / 1024:.1f}",
            f"{r['bytes_in'] / r['elapsed_s'] / 1e6:.0f}",
        ]
        for r in runs
    ]
    headers = ["stream", "codec", "sink", "peak RSS before streaming MiB", "peak RSS MiB", "growth MiB", "MB/s"]
    print(benchlib.markdown_table(headers, rows))
    if args.save:
        print(f"\nsaved {benchlib.save(args.save, {'runs': runs})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
