"""Two CPU stages (e.g. zstd-3 then sha256) through the Pipeline versus both stages serially in one thread.

Run: ``python benchmarks/bench_stages.py [--size 256MiB] [--reps 5]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import backstream
from backstream import Pipeline, Transform, file_sink, file_source

sys.path.insert(0, str(Path(__file__).parent))
import benchlib
import datagen

BLOCK = 64 * 1024


class HashThrough:
    """A CPU stage for the benchmark: hashes every byte and passes the data on unchanged."""

    def __init__(self, algorithm: str) -> None:
        self._hash = hashlib.new(algorithm)

    def update(self, chunk: bytes) -> bytes:
        self._hash.update(chunk)
        return chunk

    def finish(self) -> bytes:
        return b""


StageMaker = Callable[[], backstream.Codec]


def _zstd(level: int) -> StageMaker:
    factory = benchlib.compressor_factory("zstd")
    return lambda: factory.compressor({"level": str(level)})


def _hash(algorithm: str) -> StageMaker:
    return lambda: HashThrough(algorithm)


def _cipher(name: str) -> StageMaker | None:
    """The object-format encryptor (STREAM of 64 KiB AEAD chunks) over the cipher plugin's AEAD,
    with a random key and no header; None when that plugin does not exist (yet)."""
    factory = benchlib.cipher_factory(name)
    if factory is None:
        return None
    from backstream.crypto.stream import StreamEncryptor

    return lambda: StreamEncryptor(factory.aead(os.urandom(32)))


@dataclass(frozen=True)
class Combination:
    label: str
    stages: tuple[tuple[str, StageMaker], ...]


def combinations(names: list[str]) -> list[Combination]:
    available: dict[str, Combination] = {}
    zstd3 = _zstd(3)
    available["zstd-3 > sha256"] = Combination("zstd-3 > sha256", (("zstd-3", zstd3), ("sha256", _hash("sha256"))))
    available["sha256 > zstd-3"] = Combination("sha256 > zstd-3", (("sha256", _hash("sha256")), ("zstd-3", zstd3)))
    available["blake2b > zstd-3"] = Combination("blake2b > zstd-3", (("blake2b", _hash("blake2b")), ("zstd-3", zstd3)))
    zstd1 = _zstd(1)
    for algorithm in ("sha256", "blake2b"):
        label = f"{algorithm} > zstd-1"
        available[label] = Combination(label, ((algorithm, _hash(algorithm)), ("zstd-1", zstd1)))
    for cipher in ("aes-256-gcm", "chacha20-poly1305"):
        try:
            maker = _cipher(cipher)
        except backstream.BackstreamError:
            maker = None
        if maker is not None:
            label = f"zstd-3 > {cipher}"
            available[label] = Combination(label, (("zstd-3", zstd3), (cipher, maker)))
    chosen = []
    for name in names:
        if name in available:
            chosen.append(available[name])
        else:
            print(f"{name}: not available (yet), skipped", file=sys.stderr)
    return chosen


class Fused:
    """Two codecs as one: the pipeline then runs both stages in one worker thread (no overlap)."""

    def __init__(self, first: backstream.Codec, second: backstream.Codec) -> None:
        self._first, self._second = first, second

    def update(self, chunk: bytes) -> bytes:
        middle = self._first.update(chunk)
        return self._second.update(middle) if middle else b""

    def finish(self) -> bytes:
        return self._second.update(self._first.finish()) + self._second.finish()


def run_pipeline(combo: Combination, source: Path, target: Path, fused: bool) -> benchlib.Sample:
    holder: dict[str, backstream.PipelineResult] = {}

    async def main() -> None:
        transforms = [Transform(name, make()) for name, make in combo.stages]
        if fused:
            first, second = transforms
            transforms = [Transform(f"{first.name}+{second.name}", Fused(first.codec, second.codec))]
        pipeline = Pipeline(file_source(source), transforms, file_sink(target, fsync=False))
        holder["result"] = await pipeline.run()

    def work() -> tuple[int, int]:
        anyio.run(main)
        return source.stat().st_size, target.stat().st_size

    sample = benchlib.timed(work)
    sample.extra["stages"] = [
        {"name": s.name, "busy_s": round(s.busy_seconds, 3), "wait_in_s": round(s.wait_input_seconds, 3)}
        for s in holder["result"].stages
    ]
    return sample


def run_serial(combo: Combination, source: Path, target: Path) -> benchlib.Sample:
    """Both stages on each 64 KiB block in one thread, and the sha256 of the output: the same
    work as the pipeline, whose result carries the sha256 of the stored bytes."""

    def work() -> tuple[int, int]:
        first, second = (make() for _, make in combo.stages)
        digest = hashlib.sha256()
        with open(source, "rb") as reader, open(target, "wb") as writer:
            while block := reader.read(BLOCK):
                middle = first.update(block)
                if middle:
                    out = second.update(middle)
                    digest.update(out)
                    writer.write(out)
            out = second.update(first.finish()) + second.finish()
            digest.update(out)
            writer.write(out)
        return source.stat().st_size, target.stat().st_size

    return benchlib.timed(work)


METHODS = ("pipeline", "pipeline, both stages in one thread", "serial, one thread")


def core_scaling(size: int, reps: int) -> dict[str, float]:
    """What two cores give here: zstd-3 over two halves of the sample in two threads, versus one
    thread over one half (in memory, no pipeline). 2.0 would be perfect scaling."""
    import threading

    import zstandard

    data = datagen.sample_file(size).read_bytes()
    halves = [data[: len(data) // 2], data[len(data) // 2 :]]
    del data

    def compress(part: bytes) -> None:
        obj = zstandard.ZstdCompressor(level=3).compressobj()
        view = memoryview(part)
        for start in range(0, len(part), BLOCK):
            obj.compress(view[start : start + BLOCK])
        obj.flush()

    def one() -> benchlib.Sample:
        def work() -> tuple[int, int]:
            compress(halves[0])
            return len(halves[0]), 1

        return benchlib.timed(work)

    def two() -> benchlib.Sample:
        def work() -> tuple[int, int]:
            threads = [threading.Thread(target=compress, args=(half,)) for half in halves]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return sum(map(len, halves)), 1

        return benchlib.timed(work)

    ones, twos = [], []
    for _ in range(reps):
        ones.append(benchlib.undisturbed(one))
        twos.append(benchlib.undisturbed(two))
    single = benchlib.Summary.of("one thread", ones).mb_per_s
    double = benchlib.Summary.of("two threads", twos).mb_per_s
    return {"one_thread_mb_s": single, "two_threads_mb_s": double, "scaling": double / single}


def bench(combo: Combination, size: int, reps: int) -> dict[str, Any]:
    source = datagen.sample_file(size)
    benchlib.warm(source)
    target = benchlib.scratch_dir() / "stages.out"
    samples: dict[str, list[benchlib.Sample]] = {m: [] for m in METHODS}
    runs = {
        "pipeline": lambda: run_pipeline(combo, source, target, False),
        "pipeline, both stages in one thread": lambda: run_pipeline(combo, source, target, True),
        "serial, one thread": lambda: run_serial(combo, source, target),
    }
    for _ in range(reps):
        for method, run in runs.items():  # interleaved, so drift hits every method alike
            samples[method].append(benchlib.undisturbed(run))
            target.unlink(missing_ok=True)
    return {
        "combination": combo.label,
        "input_bytes": size,
        "summaries": {m: benchlib.Summary.of(m, samples[m]) for m in METHODS},
        "pipeline_stages": [s.extra["stages"] for s in samples["pipeline"]],
    }


def report(results: list[dict[str, Any]]) -> str:
    headers = [
        "stages",
        *(f"{m} MB/s" for m in METHODS),
        "pipeline / serial",
        "pipeline CPU %",
        "other processes CPU %",
        "runs repeated",
    ]
    rows = []
    for r in results:
        s: dict[str, benchlib.Summary] = r["summaries"]
        rows.append(
            [
                r["combination"].replace(">", "→"),
                *(f"{s[m].mb_per_s:.0f}" for m in METHODS),
                f"{s['pipeline'].mb_per_s / s['serial, one thread'].mb_per_s:.2f}x",
                f"{s['pipeline'].cpu_percent:.0f}",
                f"{max(x.other_cpu_percent for x in s.values()):.0f}",
                str(sum(x.discarded for x in s.values())),
            ]
        )
    return benchlib.markdown_table(headers, rows)


DEFAULT = [
    "zstd-3 > sha256",
    "sha256 > zstd-3",
    "blake2b > zstd-3",
    "blake2b > zstd-1",
    "zstd-3 > aes-256-gcm",
]
"""Also available: ``sha256 > zstd-1``, ``zstd-3 > chacha20-poly1305``."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=datagen.parse_size, default=datagen.parse_size("256MiB"))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--stages", default=",".join(DEFAULT), help="comma-separated combinations ('a > b')")
    parser.add_argument("--save", default="stages", help="results/<name>.json ('' = do not save)")
    args = parser.parse_args(argv)
    scaling = core_scaling(args.size, args.reps)
    print(
        f"zstd-3 in memory: one thread {scaling['one_thread_mb_s']:.0f} MB/s, two threads"
        f" {scaling['two_threads_mb_s']:.0f} MB/s ({scaling['scaling']:.2f}x)",
        file=sys.stderr,
        flush=True,
    )
    results = []
    for combo in combinations([name.strip() for name in args.stages.split(",") if name.strip()]):
        result = bench(combo, args.size, args.reps)
        results.append(result)
        line = ", ".join(f"{m} {s.mb_per_s:.0f} MB/s" for m, s in result["summaries"].items())
        print(f"{combo.label}: {line}", file=sys.stderr, flush=True)
    print(report(results))
    print(
        f"\nTwo cores here: zstd-3 over two halves in two threads ran at {scaling['scaling']:.2f}x the"
        f" speed of one thread ({scaling['two_threads_mb_s']:.0f} vs {scaling['one_thread_mb_s']:.0f} MB/s)."
    )
    if args.save:
        payload = {"size": args.size, "reps": args.reps, "core_scaling": scaling, "results": results}
        print(f"\nsaved {benchlib.save(args.save, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
