"""Run the whole benchmark suite and write results/summary.md with the three must-show checks.

Run: ``python benchmarks/run_all.py [--size 256MiB] [--wait-idle 300]``; about 5-6 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import bench_codecs
import bench_rss
import bench_stages
import benchlib
import datagen

RSS_TARGET_MIB = 100.0
PIPELINE_TARGET = 0.90
NOISE = 0.02
"""Speed-ups closer to 1x than this are not counted as shown either way."""


def wait_until_idle(limit_s: float, threshold: float) -> float:
    """Wait (up to ``limit_s``) for the 1-minute load average to drop below ``threshold``; return it."""
    deadline = time.monotonic() + limit_s
    while True:
        load = os.getloadavg()[0]
        if load < threshold or time.monotonic() >= deadline:
            return load
        print(f"waiting for an idle machine (load average {load:.2f})", file=sys.stderr, flush=True)
        time.sleep(15)


def quiet(func: Callable[[list[str]], int], *args: str) -> None:
    """Run a script's ``main(argv)`` with its table going to a string (progress still on stderr)."""
    with contextlib.redirect_stdout(io.StringIO()):
        func(list(args))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256MiB", help="input for the fast codecs and the stage runs")
    parser.add_argument("--reps", default="5")
    parser.add_argument("--rss-sizes", default="256MiB,1GiB")
    parser.add_argument("--wait-idle", type=float, default=0.0, help="seconds to wait for an idle machine")
    parser.add_argument("--idle-load", type=float, default=0.3, help="load average that counts as idle (0.3)")
    parser.add_argument("--render-only", action="store_true", help="only rewrite summary.md from results/*.json")
    args = parser.parse_args(argv)
    if args.render_only:
        meta = json.loads((benchlib.RESULTS_DIR / "machine.json").read_text())
        summary = render(meta["load_average_before"], meta.get("elapsed_s", 0.0), meta["sample_zstd3_ratio"])
        (benchlib.RESULTS_DIR / "summary.md").write_text(summary)
        print(summary)
        return 0

    load_before = wait_until_idle(args.wait_idle, args.idle_load) if args.wait_idle else os.getloadavg()[0]
    started = time.perf_counter()
    machine = benchlib.machine()
    sample = datagen.sample_file(datagen.parse_size(args.size))
    ratio = datagen.zstd_ratio(sample.read_bytes())
    benchlib.save("machine", {"machine": machine, "load_average_before": load_before, "sample_zstd3_ratio": ratio})

    quiet(bench_codecs.main, "--size", args.size, "--reps", args.reps)
    quiet(bench_stages.main, "--size", args.size, "--reps", args.reps)
    quiet(bench_rss.main, "--sizes", args.rss_sizes)
    elapsed = time.perf_counter() - started
    benchlib.save(
        "machine",
        {"machine": machine, "load_average_before": load_before, "sample_zstd3_ratio": ratio, "elapsed_s": elapsed},
    )

    summary = render(load_before, elapsed, ratio)
    path = benchlib.RESULTS_DIR / "summary.md"
    path.write_text(summary)
    print(summary)
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


def render(load_before: float, elapsed: float, ratio: float) -> str:
    """The summary of the saved results (results/*.json) as Markdown."""

    def load(name: str) -> Any:
        return json.loads((benchlib.RESULTS_DIR / f"{name}.json").read_text())

    machine = load("machine")["machine"]
    codecs = load("codecs")
    stages = load("stages")
    rss = load("rss")
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine['cpu']}, {machine['cpus']} CPUs ({machine['hypervisor']} guest), "
        f"{machine['ram_gib']} GiB RAM, Debian {machine['debian']}, kernel {machine['kernel']}, "
        f"Python {machine['python']}.",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()) + ".",
        "C libraries: " + ", ".join(f"{k} {v}" for k, v in machine.get("libraries", {}).items()) + ".",
        "Tools: " + "; ".join(f"{v}" for v in machine["tools"].values()) + ".",
        f"Load average before the run: {load_before:.2f}; suite wall time {elapsed / 60:.1f} min; "
        f"sample zstd-3 ratio {ratio:.2f}x.",
        "",
        "## Codecs (median MB/s of input)",
        "",
    ]
    results = codecs["results"]
    for result in results:
        result["summaries"] = {k: benchlib.Summary(**v) for k, v in result["summaries"].items()}
    methods = tuple(results[0]["summaries"]) if results else bench_codecs.METHODS
    lines += [bench_codecs.report(results, methods), "", "## Two CPU stages", ""]
    stage_results = stages["results"]
    for result in stage_results:
        result["summaries"] = {k: benchlib.Summary(**v) for k, v in result["summaries"].items()}
    lines += [bench_stages.report(stage_results), ""]
    scaling = stages.get("core_scaling")
    if scaling:
        lines += [
            f"Two cores here: zstd-3 over two halves in two threads ran at {scaling['scaling']:.2f}x one thread"
            f" ({scaling['two_threads_mb_s']:.0f} vs {scaling['one_thread_mb_s']:.0f} MB/s).",
            "",
        ]
    lines += ["## Peak RSS", ""]
    runs = rss["runs"]
    lines += [
        benchlib.markdown_table(
            ["stream", "sink", "peak RSS before streaming MiB", "peak RSS MiB", "MB/s"],
            [
                [
                    datagen.format_size(r["size"]),
                    r["sink"],
                    f"{r['hwm_before_kib'] / 1024:.1f}",
                    f"{r['hwm_after_kib'] / 1024:.1f}",
                    f"{r['bytes_in'] / r['elapsed_s'] / 1e6:.0f}",
                ]
                for r in runs
            ],
        ),
        "",
        "## Must show",
        "",
    ]
    zstd3 = next((r for r in results if r["codec"] == "zstd-3"), None)
    if zstd3 and "pipeline" in zstd3["summaries"] and "library loop" in zstd3["summaries"]:
        share = zstd3["summaries"]["pipeline"].mb_per_s / zstd3["summaries"]["library loop"].mb_per_s
        verdict = "PASS" if share >= PIPELINE_TARGET else "FAIL"
        lines.append(
            f"- zstd-3 through the pipeline: {zstd3['summaries']['pipeline'].mb_per_s:.0f} MB/s = "
            f"{100 * share:.0f} % of the plain library loop ({zstd3['summaries']['library loop'].mb_per_s:.0f} MB/s);"
            f" target >= {100 * PIPELINE_TARGET:.0f} %: **{verdict}**"
        )
    speedups = []
    for result in stage_results:
        s = result["summaries"]
        speedup = s["pipeline"].mb_per_s / s["serial, one thread"].mb_per_s
        speedups.append((speedup, result["combination"].replace(">", "→")))
        if abs(speedup - 1.0) < NOISE:
            outcome = f"same speed (within ±{100 * NOISE:.0f} %)"
        else:
            outcome = "faster" if speedup > 1.0 else "slower"
        lines.append(
            f"- {result['combination'].replace('>', '→')}: pipeline {s['pipeline'].mb_per_s:.0f} MB/s vs serial "
            f"{s['serial, one thread'].mb_per_s:.0f} MB/s ({speedup:.2f}x): {outcome}"
        )
    if speedups:
        best, label = max(speedups)
        verdict = "PASS" if best > 1.0 + NOISE else "FAIL"
        lines.append(
            f"- a two-CPU-stage pipeline faster than both stages serially in one thread: best {label} "
            f"{best:.2f}x; target > 1x: **{verdict}**"
        )
    largest = max(runs, key=lambda r: r["size"]) if runs else None
    if largest:
        peak = max(r["hwm_after_kib"] for r in runs if r["size"] == largest["size"]) / 1024
        verdict = "PASS" if peak < RSS_TARGET_MIB else "FAIL"
        lines.append(
            f"- peak RSS streaming {datagen.format_size(largest['size'])}: {peak:.1f} MiB; "
            f"target < {RSS_TARGET_MIB:.0f} MiB: **{verdict}**"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
