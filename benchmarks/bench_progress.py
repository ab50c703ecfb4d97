"""What the progress line costs per 64 KiB chunk: drawn (tqdm, to a stream), counted but not
drawn, and no progress at all; and what that is at a restore's 1 GB/s.

Run: ``python benchmarks/bench_progress.py [--chunks 200000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable

from backstream.cli.progress_display import ProgressDisplay

CHUNK = 64 * 1024


def per_call_ns(make: Callable[[], Callable[[int], None]], chunks: int) -> float:
    report = make()
    started = time.perf_counter_ns()
    for _ in range(chunks):
        report(CHUNK)
    return (time.perf_counter_ns() - started) / chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    def drawn() -> Callable[[int], None]:
        display = ProgressDisplay("restore", stream=io.StringIO())
        display.expect(args.chunks * CHUNK)
        return display

    cases: dict[str, Callable[[], Callable[[int], None]]] = {
        "no progress (a no-op callable)": lambda: lambda size: None,
        "counted, not drawn": lambda: ProgressDisplay("restore", enabled=False),
        "drawn with tqdm, 10 redraws/s": drawn,
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):  # alternating
        for name, make in cases.items():
            results[name].append(per_call_ns(make, args.chunks))
    chunks_per_second = 1e9 / CHUNK  # 1 GB/s of 64 KiB chunks
    print(f"{args.chunks} chunks of 64 KiB per round, {args.rounds} rounds, median (min-max) per chunk:")
    for name, values in results.items():
        median = statistics.median(values)
        share = median * chunks_per_second / 1e9 * 100
        print(f"  {name:<32} {median:7.0f} ns ({min(values):.0f}-{max(values):.0f}); {share:.3f} % of a core at 1 GB/s")


if __name__ == "__main__":
    main()
