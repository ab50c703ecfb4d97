"""Helpers shared by the benchmark scripts: plugin lookup, timing, machine facts, tables.

Benchmarks are scripts (``python benchmarks/<script>.py``), never tests; nothing here asserts.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import backstream

RESULTS_DIR = Path(__file__).parent / "results"
"""Small JSON/Markdown result files (the figures quoted in benchmarks/README.md)."""


def compressor_factory(name: str) -> backstream.CompressorFactory:
    """The compressor registered as ``name``, looked up through the plugin registry.

    While other built-in plugin modules are still missing, the manager is built from the defaults
    that import (``Plugins.load`` refuses to build with a missing built-in).
    """
    try:
        plugins = backstream.Plugins.load(autoload=False)
    except backstream.PluginError:
        defaults = [dotted for dotted in _default_plugins() if _importable(dotted)]
        plugins = backstream.Plugins(backstream.make_plugin_manager(autoload=False, defaults=defaults))
    return plugins.compressors().get(name)


def cipher_factory(name: str) -> Any | None:
    """The cipher registered as ``name``, or None when no such plugin exists yet."""
    try:
        plugins = backstream.Plugins.load(autoload=False)
    except backstream.PluginError:
        defaults = [dotted for dotted in _default_plugins() if _importable(dotted)]
        plugins = backstream.Plugins(backstream.make_plugin_manager(autoload=False, defaults=defaults))
    registry = plugins.ciphers()
    return registry.get(name) if name in registry else None


def _default_plugins() -> tuple[str, ...]:
    return importlib.import_module("backstream.plugins").DEFAULT_PLUGINS  # type: ignore[no-any-return]


def _importable(dotted: str) -> bool:
    try:
        importlib.import_module(dotted)
    except ImportError:
        return False
    return True


def precompile() -> None:
    """Byte-compile backstream's own sources, as a wheel install has them: an editable install
    under PYTHONDONTWRITEBYTECODE=1 (this machine sets it) would otherwise compile every module
    again on every run, ~0.1 s of each CLI start-up that no installed copy pays."""
    import compileall

    root = Path(__file__).resolve().parent.parent
    for tree in ("core", "plugins"):
        compileall.compile_dir(str(root / tree), quiet=1)


def warm(path: Path) -> None:
    """Read a file once so that every measured run finds it in the page cache."""
    with open(path, "rb") as handle:
        while handle.read(1 << 20):
            pass


@dataclass
class Sample:
    """One timed run: wall seconds, CPU seconds (user + system) and bytes in/out."""

    wall: float
    cpu: float
    bytes_in: int
    bytes_out: int
    other_cpu: float = 0.0
    """CPU seconds the rest of the machine used meanwhile (other processes: a disturbed run)."""
    extra: dict[str, Any] = field(default_factory=dict)


def _machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot (/proc/stat, everything but idle and iowait)."""
    with open("/proc/stat") as handle:
        ticks = [int(value) for value in handle.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def timed(func: Callable[[], tuple[int, int]], *, children: bool = False) -> Sample:
    """Run ``func`` (returning bytes in, bytes out) and measure it; ``children`` counts the CPU
    time of waited-for subprocesses too (for command-line tools)."""
    before = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    busy_before = _machine_busy_seconds()
    started = time.perf_counter()
    bytes_in, bytes_out = func()
    wall = time.perf_counter() - started
    busy = _machine_busy_seconds() - busy_before
    after = (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    ours = sum((a.ru_utime - b.ru_utime) + (a.ru_stime - b.ru_stime) for a, b in zip(after, before, strict=True))
    cpu = ours
    if children:  # the tool's time, without this process's bookkeeping
        cpu = (after[1].ru_utime - before[1].ru_utime) + (after[1].ru_stime - before[1].ru_stime)
    return Sample(wall, cpu, bytes_in, bytes_out, other_cpu=max(0.0, busy - ours))


MAX_OTHER_CPU = 0.10
"""A run during which other processes used more than this share of one CPU is repeated."""


def undisturbed(run: Callable[[], Sample], *, tries: int = 6, max_other: float = MAX_OTHER_CPU) -> Sample:
    """``run()`` again (up to ``tries`` times) while other processes used more than ``max_other`` of a
    CPU meanwhile: on a shared machine their load, not ours, would set the figure. The sample kept
    records how many runs were discarded (``extra["discarded"]``)."""
    for attempt in range(tries):
        sample = run()
        if sample.other_cpu <= max_other * sample.wall or attempt == tries - 1:
            sample.extra["discarded"] = attempt
            return sample
    raise AssertionError("unreachable")


@dataclass
class Summary:
    """The median of several samples of one method."""

    method: str
    runs: int
    mb_per_s: float
    wall: float
    cpu_percent: float
    other_cpu_percent: float
    ratio: float
    walls: list[float]
    discarded: int = 0

    @classmethod
    def of(cls, method: str, samples: Sequence[Sample]) -> Summary:
        walls = [s.wall for s in samples]
        wall = statistics.median(walls)
        cpu = statistics.median(s.cpu for s in samples)
        first = samples[0]
        return cls(
            method=method,
            runs=len(samples),
            mb_per_s=first.bytes_in / wall / 1e6,
            wall=wall,
            cpu_percent=100.0 * cpu / wall,
            other_cpu_percent=100.0 * statistics.median(s.other_cpu / s.wall for s in samples),
            ratio=first.bytes_in / first.bytes_out if first.bytes_out else float("inf"),
            walls=[round(w, 4) for w in walls],
            discarded=sum(s.extra.get("discarded", 0) for s in samples),
        )


def run_tool(argv: Sequence[str], source: Path, target: Path) -> tuple[int, int]:
    """``argv < source > target``; a failing tool raises."""
    with open(source, "rb") as stdin, open(target, "wb") as stdout:
        subprocess.run(list(argv), stdin=stdin, stdout=stdout, check=True)
    return source.stat().st_size, target.stat().st_size


def tool_version(argv0: str) -> str:
    """The first line a command-line tool prints about its version."""
    flags = {"gzip": ["--version"], "bzip2": ["--help"], "xz": ["--version"], "zstd": ["-V"], "lz4": ["-V"]}
    try:
        done = subprocess.run([argv0, *flags.get(argv0, ["--version"])], capture_output=True, text=True, timeout=10)
    except OSError:
        return "missing"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def machine() -> dict[str, Any]:
    """Facts about this machine and the software measured (for the README)."""
    info: dict[str, Any] = {}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        info["cpu"] = fields.get("Model name", "?").strip()
        info["cpus"] = fields.get("CPU(s)", "?").strip()
        info["hypervisor"] = fields.get("Hypervisor vendor", "none").strip()
    except (OSError, subprocess.CalledProcessError):
        info["cpu"] = platform.processor()
    with open("/proc/meminfo") as handle:
        total_kib = int(handle.readline().split()[1])
    info["ram_gib"] = round(total_kib / 1024**2, 1)
    try:
        info["debian"] = Path("/etc/debian_version").read_text().strip()
    except OSError:
        info["debian"] = "not Debian"
    info["kernel"] = platform.release()
    info["python"] = platform.python_version()
    packages = ("backstream", "anyio", "zstandard", "lz4", "cryptography")
    info["packages"] = {name: _version(name) for name in packages}
    info["libraries"] = _libraries()
    info["tools"] = {name: tool_version(name) for name in ("zstd", "lz4", "gzip", "bzip2", "xz")}
    return info


def _libraries() -> dict[str, str]:
    """Versions of the C libraries the codecs run (as the Python bindings report them)."""
    import zlib

    found = {"zlib": zlib.ZLIB_RUNTIME_VERSION}
    try:
        import zstandard

        found["libzstd"] = ".".join(map(str, zstandard.ZSTD_VERSION))
    except ImportError:
        pass
    try:
        import lz4

        found["liblz4"] = lz4.library_version_string()
    except ImportError:
        pass
    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        found["openssl"] = backend.openssl_version_text()
    except ImportError:
        pass
    return found


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def vm_hwm_kib() -> int:
    """This process's peak resident set size (VmHWM) in KiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def save(name: str, payload: dict[str, Any]) -> Path:
    """Write ``results/<name>.json`` (dataclasses become dicts)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"

    def default(obj: object) -> object:
        if hasattr(obj, "__dataclass_fields__"):
            return asdict(obj)  # type: ignore[arg-type]
        raise TypeError(f"cannot serialise {type(obj).__name__}")

    path.write_text(json.dumps(payload, indent=2, default=default) + "\n")
    return path


def scratch_dir() -> Path:
    """Where outputs of measured runs go (deleted after each run)."""
    path = Path(os.environ.get("BACKSTREAM_BENCH_CACHE", "/tmp/backstream-bench")) / "out"
    path.mkdir(parents=True, exist_ok=True)
    return path
