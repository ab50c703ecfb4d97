"""Codec throughput through backstream's Pipeline versus a plain library loop and the command-line tool.

Run: ``python benchmarks/bench_codecs.py [--size 256MiB] [--codecs zstd-3,lz4] [--reps 3]``.
"""

from __future__ import annotations

import argparse
import bz2
import lzma
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio
import backstream
from backstream import Pipeline, Transform, file_sink, file_source

sys.path.insert(0, str(Path(__file__).parent))
import benchlib
import datagen

BLOCK = 64 * 1024
"""Bytes per read in the plain loops (the pipeline's chunk size)."""


class PlainCompressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _Lz4Frame:
    """lz4.frame's compressor set up as the plugin does, ``begin()`` folded into the first ``compress``."""

    def __init__(self) -> None:
        import lz4.frame

        self._obj = lz4.frame.LZ4FrameCompressor(
            block_size=lz4.frame.BLOCKSIZE_MAX64KB, compression_level=0, content_checksum=True, auto_flush=False
        )
        self._header = self._obj.begin()

    def compress(self, data: bytes) -> bytes:
        out = self._header + self._obj.compress(data)
        self._header = b""
        return out

    def flush(self) -> bytes:
        return self._header + self._obj.flush()


def _zstd(level: int) -> Callable[[], PlainCompressor]:
    def make() -> PlainCompressor:
        import zstandard

        params = zstandard.ZstdCompressionParameters.from_level(level, threads=0, write_checksum=True)
        return zstandard.ZstdCompressor(compression_params=params).compressobj()  # type: ignore[no-any-return]

    return make


@dataclass(frozen=True)
class CodecSpec:
    """One codec setting measured three ways: plugin name + options, library loop, tool command."""

    label: str
    plugin: str
    options: dict[str, str]
    plain: Callable[[], PlainCompressor]
    tool: tuple[str, ...]
    test: tuple[str, ...] | None
    """Command that checks the pipeline's output file (path appended), or None."""
    size_divisor: int = 1
    """Slow codecs get ``--size / size_divisor`` bytes of input."""
    max_reps: int = 99
    """Slow codecs get at most this many repetitions."""
    notes: list[str] = field(default_factory=list)


SPECS: dict[str, CodecSpec] = {
    spec.label: spec
    for spec in (
        CodecSpec("none", "none", {}, _Identity, ("cat",), None),
        CodecSpec(
            "gzip-6",
            "gzip",
            {"level": "6"},
            lambda: zlib.compressobj(6, zlib.DEFLATED, 31),
            ("gzip", "-6", "-c", "-n"),
            ("gzip", "-t"),
            size_divisor=4,
            max_reps=3,
        ),
        CodecSpec(
            "bz2-9",
            "bz2",
            {"level": "9"},
            lambda: bz2.BZ2Compressor(9),
            ("bzip2", "-9", "-c"),
            ("bzip2", "-t"),
            size_divisor=8,
            max_reps=3,
        ),
        CodecSpec(
            "xz-6",
            "xz",
            {"level": "6"},
            lambda: lzma.LZMACompressor(format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6),
            ("xz", "-6", "-T1", "-c"),
            ("xz", "-t"),
            size_divisor=32,
            max_reps=3,
        ),
        CodecSpec("zstd-1", "zstd", {"level": "1"}, _zstd(1), ("zstd", "-1", "-T1", "-q", "-c"), ("zstd", "-q", "-t")),
        CodecSpec("zstd-3", "zstd", {"level": "3"}, _zstd(3), ("zstd", "-3", "-T1", "-q", "-c"), ("zstd", "-q", "-t")),
        CodecSpec("lz4", "lz4", {}, _Lz4Frame, ("lz4", "-1", "-q", "-c"), ("lz4", "-q", "-t")),
    )
}

METHODS = ("pipeline", "codec loop", "library loop", "tool")
"""pipeline: Pipeline(file_source -> Transform(plugin codec) -> file_sink(fsync=False));
codec loop: the same plugin codec called in one thread over 64 KiB reads (no pipeline);
library loop: the compression library called directly in one thread over 64 KiB reads;
tool: the command-line tool, stdin from the file, stdout to a file."""


def run_pipeline(codec: backstream.Codec, label: str, source: Path, target: Path) -> benchlib.Sample:
    holder: dict[str, backstream.PipelineResult] = {}

    async def main() -> None:
        # A codec may hint that a worker thread would only add cost (``none`` does).
        transform = Transform(label, codec, threaded=getattr(codec, "threaded", True))
        pipeline = Pipeline(file_source(source), [transform], file_sink(target, fsync=False))
        holder["result"] = await pipeline.run()

    def work() -> tuple[int, int]:
        anyio.run(main)
        return _sizes(source, target)

    sample = benchlib.timed(work)
    result = holder["result"]
    sample.extra["stages"] = [
        {
            "name": stage.name,
            "busy_s": round(stage.busy_seconds, 3),
            "wait_in_s": round(stage.wait_input_seconds, 3),
            "wait_out_s": round(stage.wait_output_seconds, 3),
        }
        for stage in result.stages
    ]
    return sample


def run_codec_loop(codec: backstream.Codec, source: Path, target: Path) -> benchlib.Sample:
    def work() -> tuple[int, int]:
        with open(source, "rb") as reader, open(target, "wb") as writer:
            while block := reader.read(BLOCK):
                writer.write(codec.update(block))
            writer.write(codec.finish())
        return _sizes(source, target)

    return benchlib.timed(work)


def run_library_loop(make: Callable[[], PlainCompressor], source: Path, target: Path) -> benchlib.Sample:
    def work() -> tuple[int, int]:
        compressor = make()
        with open(source, "rb") as reader, open(target, "wb") as writer:
            while block := reader.read(BLOCK):
                writer.write(compressor.compress(block))
            writer.write(compressor.flush())
        return _sizes(source, target)

    return benchlib.timed(work)


def _sizes(source: Path, target: Path) -> tuple[int, int]:
    return source.stat().st_size, target.stat().st_size


def bench_codec(spec: CodecSpec, size: int, reps: int, methods: tuple[str, ...]) -> dict[str, Any]:
    factory = benchlib.compressor_factory(spec.plugin)
    input_size = max(BLOCK, size // spec.size_divisor)
    source = datagen.sample_file(input_size)
    benchlib.warm(source)
    target = benchlib.scratch_dir() / f"{spec.label}.out"
    samples: dict[str, list[benchlib.Sample]] = {method: [] for method in methods}
    checked = spec.test is None
    for _ in range(min(reps, spec.max_reps)):
        for method in methods:  # interleaved, so drift hits every method alike

            def once(method: str = method) -> benchlib.Sample:
                target.unlink(missing_ok=True)
                if method == "pipeline":
                    return run_pipeline(factory.compressor(spec.options), spec.label, source, target)
                if method == "codec loop":
                    return run_codec_loop(factory.compressor(spec.options), source, target)
                if method == "library loop":
                    return run_library_loop(spec.plain, source, target)
                return benchlib.timed(lambda: benchlib.run_tool(spec.tool, source, target), children=True)

            samples[method].append(benchlib.undisturbed(once))
            if method == "pipeline" and not checked:  # the tool must read what the pipeline wrote
                subprocess.run([*spec.test, str(target)], check=True)
                checked = True
            target.unlink(missing_ok=True)
    summaries = {method: benchlib.Summary.of(method, samples[method]) for method in methods}
    stages = [s.extra["stages"] for s in samples.get("pipeline", [])]
    return {
        "codec": spec.label,
        "plugin": spec.plugin,
        "options": spec.options,
        "tool": " ".join(spec.tool),
        "input_bytes": input_size,
        "summaries": summaries,
        "pipeline_stages": stages,
    }


def report(results: list[dict[str, Any]], methods: tuple[str, ...]) -> str:
    headers = ["codec", "input", *(f"{m} MB/s" for m in methods)]
    if "pipeline" in methods and "library loop" in methods:
        headers.append("pipeline / library loop")
    headers += ["ratio (pipeline)", "ratio (tool)"] if "tool" in methods else ["ratio"]
    rows = []
    for result in results:
        summaries: dict[str, benchlib.Summary] = result["summaries"]
        row: list[object] = [result["codec"], datagen.format_size(result["input_bytes"])]
        row += [f"{summaries[m].mb_per_s:.0f}" for m in methods]
        if "pipeline" in methods and "library loop" in methods:
            row.append(f"{100 * summaries['pipeline'].mb_per_s / summaries['library loop'].mb_per_s:.0f} %")
        first = summaries[methods[0]]
        row.append(f"{first.ratio:.2f}")
        if "tool" in methods:
            row.append(f"{summaries['tool'].ratio:.2f}")
        rows.append(row)
    cpu_headers = ["codec", *(f"{m} CPU %" for m in methods), "other processes CPU %", "runs repeated"]
    cpu_rows = [
        [
            r["codec"],
            *(f"{r['summaries'][m].cpu_percent:.0f}" for m in methods),
            f"{max(r['summaries'][m].other_cpu_percent for m in methods):.0f}",
            str(sum(r["summaries"][m].discarded for m in methods)),
        ]
        for r in results
    ]
    return (
        benchlib.markdown_table(headers, rows)
        + "\n\nCPU time / wall time (100 % = one core busy). Other processes: the highest median of the"
        + " methods (above a few % the figures were disturbed); runs repeated: runs thrown away and run again"
        + " because other processes used > 10 % of a CPU meanwhile.\n\n"
        + benchlib.markdown_table(cpu_headers, cpu_rows)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=datagen.parse_size, default=datagen.parse_size("256MiB"))
    parser.add_argument("--codecs", default=",".join(SPECS), help=f"comma-separated, from {','.join(SPECS)}")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {','.join(METHODS)}")
    parser.add_argument("--reps", type=int, default=5, help="rounds per method, median reported (slow codecs: 3)")
    parser.add_argument("--save", default="codecs", help="results/<name>.json ('' = do not save)")
    args = parser.parse_args(argv)
    labels = [label.strip() for label in args.codecs.split(",") if label.strip()]
    unknown = [label for label in labels if label not in SPECS]
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if unknown or not set(methods) <= set(METHODS):
        parser.error(f"unknown codec or method: {unknown or methods}")

    results = []
    for label in labels:
        spec = SPECS[label]
        try:
            result = bench_codec(spec, args.size, args.reps, methods)
        except backstream.BackstreamError as exc:
            print(f"{label}: skipped, plugin not usable: {exc}", file=sys.stderr, flush=True)
            continue
        results.append(result)
        line = ", ".join(f"{m} {s.mb_per_s:.0f} MB/s" for m, s in result["summaries"].items())
        print(f"{label} ({datagen.format_size(result['input_bytes'])}): {line}", file=sys.stderr, flush=True)
    print(report(results, methods))
    if args.save:
        path = benchlib.save(args.save, {"size": args.size, "reps": args.reps, "results": results})
        print(f"\nsaved {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
