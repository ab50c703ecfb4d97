"""``backstream bench``: throughput, ratio, CPU and memory of codec x cipher combinations, to choose one.

Each run is a fresh subprocess over generated dump text or ``--input FILE``; ``--json`` prints a list of objects.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from backstream.bench.runner import (
    KDF_LABELS,
    NO_CIPHER,
    BenchPlan,
    Combination,
    Result,
    check_combinations,
    default_ciphers,
    default_codecs,
    key_setup_seconds,
    parse_ciphers,
    parse_codecs,
    run_bench,
)
from backstream.bench.sample import DEFAULT_SEED, write_sample
from backstream.cli.options import human_bytes, print_json
from backstream.errors import ConfigError, SourceError
from backstream.plugins import Plugins

NAME = "bench"
HELP = "measure compressor x cipher combinations (throughput, ratio, CPU, memory) to choose one"

DEFAULT_SIZE = "256MiB"
DEFAULT_REPEAT = 3
"""Runs per combination unless ``--repeat`` says otherwise: the median of three is not reordered by one noisy run."""
HINT_MB_PER_S = 100.0
"""The hint names the best ratio among combinations at least this fast."""

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--codecs",
        action="append",
        metavar="LIST",
        help="compressors to measure, e.g. zstd:1,zstd:3,lz4,gzip:6 (default: every available one at its "
        "default level, plus zstd:1 and zstd:3)",
    )
    parser.add_argument(
        "--ciphers",
        action="append",
        metavar="LIST",
        help="cipher suites, e.g. none,chacha20-poly1305,aes-256-gcm (default: none and every available one)",
    )
    parser.add_argument("--input", metavar="FILE", help="measure on this file (e.g. a real dump) instead of a sample")
    parser.add_argument(
        "--size",
        metavar="SIZE",
        help=f"bytes of generated sample (default {DEFAULT_SIZE}); with --input, only the first SIZE bytes",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=DEFAULT_REPEAT,
        metavar="N",
        help=f"runs per combination, in alternating rounds; the median is shown (default {DEFAULT_REPEAT})",
    )
    parser.add_argument(
        "--full", action="store_true", help="measure slow codecs on the whole input too (can take minutes)"
    )
    parser.add_argument(
        "--verify", action="store_true", help="store each output in a temporary file, restore it and compare sha256"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the generated sample")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def parse_size(text: str) -> int:
    """``256MiB`` -> 268435456; accepts B, k/KB, M/MB, G/GB (powers of 10) and KiB/MiB/GiB."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise ConfigError(f"bad size {text!r} (expected e.g. 4MiB, 256MiB, 1GiB)")
    size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size <= 0:
        raise ConfigError(f"bad size {text!r}: it must be more than 0 bytes")
    return size


def run(args: argparse.Namespace) -> int:
    plugins = Plugins.load()
    codecs = parse_codecs(args.codecs) if args.codecs else default_codecs(plugins)
    ciphers = parse_ciphers(args.ciphers) if args.ciphers else default_ciphers(plugins)
    check_combinations(plugins, codecs, ciphers)
    if args.repeat < 1:
        raise ConfigError("--repeat must be at least 1")
    size = parse_size(args.size) if args.size else None
    combinations = [Combination(codec, cipher) for codec in codecs for cipher in ciphers]
    progress = _progress if sys.stderr.isatty() else None

    with tempfile.TemporaryDirectory(prefix="backstream-bench-") as workdir:
        if args.input:
            path = Path(args.input)
            if not path.is_file():
                reason = "not a regular file" if path.exists() else "no such file"
                raise SourceError(f"cannot read {args.input}: {reason}")
            available = path.stat().st_size
            if available == 0:
                raise ConfigError(f"{args.input} is empty: nothing to measure")
            size = min(size or available, available)
            described = f"{_mib(size)} of {args.input}"
        else:
            size = size or parse_size(DEFAULT_SIZE)
            path = Path(workdir) / "sample.sql"
            if progress:
                progress(f"generating {_mib(size)} of sample dump text ...")
            write_sample(path, size, seed=args.seed)
            described = f"{_mib(size)} of generated dump text (seed {args.seed})"
        plan = BenchPlan(
            combinations,
            path,
            size,
            repeat=args.repeat,
            verify=args.verify,
            full=args.full,
            workdir=Path(workdir),
        )
        results = run_bench(plan, plugins, progress)

    ordered = sorted(results, key=lambda result: result.mb_per_s, reverse=True)
    if args.json:
        print_json([result.as_json() for result in ordered])
    else:
        runs = "one run" if args.repeat == 1 else f"median of {args.repeat} runs"
        print(f"backstream bench: {described}; {runs} per combination, each in a fresh process; MB = 10^6 bytes")
        print()
        _print_table(ordered, verify=args.verify)
        print()
        reduced = _reduced_note(ordered)
        if reduced:
            print(reduced)
        defaulted = [*([] if args.codecs else plugins.compressors()), *([] if args.ciphers else plugins.ciphers())]
        for entry in defaulted:
            if not entry.available:
                print(f"not measured: {entry.family} {entry.name}: {entry.unavailable_reason}")
        print(hint(ordered))
        if any(cipher != NO_CIPHER for cipher in ciphers):
            print(_key_setup_note())
    failed = [result.combination.label for result in results if args.verify and not result.verified]
    if failed:
        print(f"backstream: error: restored data differs from the input: {', '.join(failed)}", file=sys.stderr)
        return 3
    return 0


def hint(results: Sequence[Result]) -> str:
    """One line: the best ratio among combinations of at least HINT_MB_PER_S, and the best overall."""
    fast = [result for result in results if result.mb_per_s >= HINT_MB_PER_S]
    best = max(results, key=lambda result: result.ratio)
    overall = f"best ratio overall: {best.combination.label} ({best.ratio:.2f}x at {best.mb_per_s:.0f} MB/s)"
    if not fast:
        fastest = max(results, key=lambda result: result.mb_per_s)
        return (
            f"hint: nothing reached {HINT_MB_PER_S:.0f} MB/s here; fastest: {fastest.combination.label} "
            f"({fastest.mb_per_s:.0f} MB/s); {overall}"
        )
    pick = max(fast, key=lambda result: (result.ratio, result.mb_per_s))
    line = (
        f"hint: best ratio at >= {HINT_MB_PER_S:.0f} MB/s: {pick.combination.label} "
        f"({pick.ratio:.2f}x at {pick.mb_per_s:.0f} MB/s)"
    )
    return line if pick is best else f"{line}; {overall}"


def _print_table(results: Sequence[Result], *, verify: bool) -> None:
    headers = ["COMBINATION", "MB/S", "RATIO", "CPU S", "PEAK RSS MiB"]
    if verify:
        headers += ["RESTORE MB/S", "VERIFIED"]
    rows = []
    for result in results:
        label = result.combination.label + (" *" if result.reduced else "")
        row = [
            label,
            f"{result.mb_per_s:.1f}",
            f"{result.ratio:.2f}",
            f"{result.median.cpu_seconds:.2f}",
            f"{result.peak_rss_mib:.1f}",
        ]
        if verify:
            restore = result.restore_mb_per_s
            row += ["-" if restore is None else f"{restore:.1f}", "ok" if result.verified else "FAILED"]
        rows.append(row)
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        print("  ".join(cells).rstrip())


def _reduced_note(results: Sequence[Result]) -> str:
    sizes: dict[str, int] = {}
    for result in results:
        if result.reduced:
            sizes.setdefault(result.combination.codec_label, result.sample_bytes)
    if not sizes:
        return ""
    listed = ", ".join(f"{codec} {_mib(size)}" for codec, size in sizes.items())
    return f"* slow codec, measured on the first part of the input only: {listed} (--full measures all of it)"


def _key_setup_note() -> str:
    timings = key_setup_seconds()
    passphrase = ", ".join(f"with {KDF_LABELS[kdf]} {seconds:.2f} s" for kdf, seconds in timings.items())
    return (
        f"per-object key setup (once per object, whatever its size; not in the figures above): "
        f"passphrase {passphrase}; local keystore or KMS key: one wrap call per object"
    )


def _mib(size: int) -> str:
    """``256 MiB`` for whole MiB, else e.g. ``1.5 MiB`` or ``100 B``."""
    if size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MiB"
    return human_bytes(size)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
