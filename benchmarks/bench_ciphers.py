"""Issue 3: zstd-3 followed by a cipher through ``backstream.Pipeline`` against zstd-3 alone.

Run: ``python benchmarks/bench_ciphers.py [--size 256MiB] [--reps 5]`` (results/ciphers.json).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from backstream.bench.runner import BenchPlan, Combination, Measurement, run_bench
from backstream.jobs.common import CompressionSpec
from backstream.plugins import Plugins

sys.path.insert(0, str(Path(__file__).parent))
import benchlib
import datagen

CIPHERS = ("none", "chacha20-poly1305", "aes-256-gcm")
TARGET = 0.85
"""Issue 3: an encrypted combination keeps at least this share of zstd-3's throughput."""


def load_average() -> list[str]:
    """The 1, 5 and 15 minute load averages, as /proc/loadavg shows them."""
    return Path("/proc/loadavg").read_text().split()[:3]


def one_run(plugins: Plugins, combination: Combination, path: Path, size: int) -> tuple[Measurement, float]:
    """One child-process run of ``combination``; also the CPU other processes used meanwhile."""
    plan = BenchPlan(combinations=[combination], input_path=path, size=size, repeat=1, full=True)
    holder: list[Measurement] = []

    def run() -> tuple[int, int]:
        holder.append(run_bench(plan, plugins)[0].runs[0])
        return holder[-1].input_bytes, holder[-1].output_bytes

    sample = benchlib.timed(run, children=True)
    return holder[-1], sample.other_cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=datagen.parse_size, default=datagen.parse_size("256MiB"))
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)

    plugins = Plugins.load()
    path = datagen.sample_file(args.size)
    benchlib.warm(path)
    combos = [Combination(CompressionSpec.parse("zstd:3"), cipher) for cipher in CIPHERS]
    runs: dict[str, list[dict[str, Any]]] = {c.cipher: [] for c in combos}
    loads: list[list[str]] = []
    for rep in range(args.reps):  # interleaved rounds: drift on a shared machine hits every cipher alike
        loads.append(load_average())
        for combination in combos:
            measurement, other = one_run(plugins, combination, path, args.size)
            runs[combination.cipher].append(
                {
                    "mb_per_s": round(measurement.mb_per_s, 2),
                    "seconds": round(measurement.seconds, 4),
                    "cpu_seconds": round(measurement.cpu_seconds, 4),
                    "peak_rss_mib": round(measurement.peak_rss_bytes / 2**20, 1),
                    "ratio": round(measurement.input_bytes / max(1, measurement.output_bytes), 3),
                    "other_cpu_seconds": round(other, 3),
                    "stages_busy_seconds": {k: round(v, 4) for k, v in measurement.stages.items()},
                }
            )
            print(f"round {rep + 1}: zstd:3 + {combination.cipher}: {measurement.mb_per_s:.1f} MB/s", flush=True)

    base = statistics.median(r["mb_per_s"] for r in runs["none"])
    summary = []
    for cipher, samples in runs.items():
        median = statistics.median(r["mb_per_s"] for r in samples)
        summary.append(
            {
                "combination": f"zstd:3 + {cipher}",
                "median_mb_per_s": round(median, 1),
                "share_of_zstd3": round(median / base, 3),
                "meets_target": None if cipher == "none" else median / base >= TARGET,
                "median_cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in samples), 3),
                "max_peak_rss_mib": max(r["peak_rss_mib"] for r in samples),
                "ratio": samples[0]["ratio"],
                "runs_mb_per_s": [r["mb_per_s"] for r in samples],
            }
        )
    payload = {
        "machine": benchlib.machine(),
        "size": args.size,
        "reps": args.reps,
        "load_average_before_each_round": loads,
        "uptime_after": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "summary": summary,
        "runs": runs,
    }
    print(f"saved {benchlib.save('ciphers', payload)}")
    print(
        benchlib.markdown_table(
            ["combination", "median MB/s", "share of zstd-3", "CPU s", "peak RSS MiB", "runs MB/s"],
            [
                (
                    s["combination"],
                    s["median_mb_per_s"],
                    f"{100 * s['share_of_zstd3']:.1f}%",
                    s["median_cpu_seconds"],
                    s["max_peak_rss_mib"],
                    ", ".join(f"{v:.0f}" for v in s["runs_mb_per_s"]),
                )
                for s in summary
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
