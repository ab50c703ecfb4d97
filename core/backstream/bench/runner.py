"""Measure codec x cipher combinations: each run is ``backstream.Pipeline`` in a fresh subprocess.

The parent prepares the input and spawns ``python -m backstream.bench.runner``, which reads a JSON job on stdin.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from backstream.crypto import (
    ARGON2ID_DEFAULTS,
    SCRYPT_DEFAULTS,
    AuditLog,
    derive_passphrase_key,
    new_encryptor,
    new_kdf_params,
    open_encrypted,
)
from backstream.errors import BackstreamError, ConfigError, KeyProviderError, UnknownPluginError
from backstream.jobs.common import CompressionSpec
from backstream.pipeline import Pipeline, StageMetrics, Transform
from backstream.plugins import Plugins
from backstream.protocols import ByteWriter, Stanza
from backstream.streams import READ_SIZE, file_sink, iterable_source

NO_CIPHER = "none"
"""The cipher name that means "not encrypted"."""

DEFAULT_EXTRA_CODECS = ("zstd:1", "zstd:3")
"""Besides every compressor at its default level, the default run measures these levels."""

BUDGET_SECONDS = 3.0
"""A combination whose codec would take longer than this on the whole sample gets a smaller sample."""

MIN_SAMPLE = 8 * 1024 * 1024
"""Smallest reduced sample: xz's default dictionary is 8 MiB, and a shorter input would understate its ratio."""

PROBE_SIZE = 1024 * 1024
"""Bytes compressed in the parent to estimate a codec's speed before choosing its sample size."""

MIB = 1024 * 1024
MB = 1_000_000

KEY_SCHEME = "bench"
"""The key provider of bench objects: a throwaway in-memory key, so no KDF or KMS cost per run."""


# --- what to run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Combination:
    """One compressor (with options) followed by one cipher suite, or by no encryption."""

    codec: CompressionSpec
    cipher: str = NO_CIPHER

    @property
    def codec_label(self) -> str:
        """``zstd:3`` for a level alone, ``zstd:level=19,threads=2`` otherwise, ``gzip`` for no options."""
        options = self.codec.options
        if not options:
            return self.codec.name
        if set(options) == {"level"}:
            return f"{self.codec.name}:{options['level']}"
        return str(self.codec)

    @property
    def label(self) -> str:
        return f"{self.codec_label} + {self.cipher}"


def parse_codecs(values: Sequence[str]) -> list[CompressionSpec]:
    """Codec specs from ``--codecs`` values: ``zstd:1,zstd:3,lz4`` (a piece with ``=`` and no ``:``
    continues the previous spec's options, so ``zstd:level=19,threads=2,lz4`` is two codecs)."""
    specs: list[str] = []
    for value in values:
        for piece in (p.strip() for p in value.split(",")):
            if not piece:
                continue
            if "=" in piece and ":" not in piece and specs:
                specs[-1] += "," + piece
            else:
                specs.append(piece)
    if not specs:
        raise ConfigError("no codec given (e.g. --codecs zstd:3,lz4)")
    return _unique([CompressionSpec.parse(spec) for spec in specs])


def parse_ciphers(values: Sequence[str]) -> list[str]:
    """Cipher names from ``--ciphers`` values (comma-separated; ``none`` = not encrypted)."""
    names = [p.strip().lower() for value in values for p in value.split(",") if p.strip()]
    if not names:
        raise ConfigError("no cipher given (e.g. --ciphers none,aes-256-gcm)")
    return list(dict.fromkeys(names))


def default_codecs(plugins: Plugins) -> list[CompressionSpec]:
    """Every available compressor at its default level, plus ``DEFAULT_EXTRA_CODECS`` when available."""
    registry = plugins.compressors()
    specs = [CompressionSpec.parse(spec) for spec in DEFAULT_EXTRA_CODECS]
    specs = [spec for spec in specs if spec.name in registry and registry.entry(spec.name).available]
    extra_names = {spec.name for spec in specs}
    specs += [
        CompressionSpec(entry.name, {}) for entry in registry if entry.available and entry.name not in extra_names
    ]
    return specs


def default_ciphers(plugins: Plugins) -> list[str]:
    """No encryption, then every available cipher suite."""
    return [NO_CIPHER, *(entry.name for entry in plugins.ciphers() if entry.available)]


def check_combinations(plugins: Plugins, codecs: Sequence[CompressionSpec], ciphers: Sequence[str]) -> None:
    """Fail before anything runs: unknown names (UnknownPluginError listing the known ones), missing
    optional dependencies (with the install hint) and bad codec options (ConfigError)."""
    compressors = plugins.compressors()
    for spec in codecs:
        compressors.get(spec.name).compressor(spec.options)
    registry = plugins.ciphers()
    for name in ciphers:
        if name == NO_CIPHER:
            continue
        if name not in registry:
            known = ", ".join([NO_CIPHER, *registry.names()])
            raise UnknownPluginError(f"unknown cipher {name!r} (known: {known})")
        registry.get(name)


def _unique(specs: list[CompressionSpec]) -> list[CompressionSpec]:
    seen: set[str] = set()
    out = []
    for spec in specs:
        key = str(spec)
        if key not in seen:
            seen.add(key)
            out.append(spec)
    return out


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One run in one child process: the pipeline's bytes, wall time, the child's CPU and peak RSS."""

    input_bytes: int
    output_bytes: int
    seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    stages: Mapping[str, float] = field(default_factory=dict)
    sha256: str = ""

    @property
    def mb_per_s(self) -> float:
        return self.input_bytes / MB / max(self.seconds, 1e-9)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Measurement:
        return cls(
            input_bytes=int(data["input_bytes"]),
            output_bytes=int(data["output_bytes"]),
            seconds=float(data["seconds"]),
            cpu_seconds=float(data["cpu_seconds"]),
            peak_rss_bytes=int(data["peak_rss_bytes"]),
            stages=dict(data.get("stages", {})),
            sha256=str(data.get("sha256", "")),
        )


@dataclass(frozen=True)
class Result:
    """All runs of one combination; figures are those of the median run by throughput."""

    combination: Combination
    sample_bytes: int
    reduced: bool
    runs: tuple[Measurement, ...]
    restores: tuple[Measurement, ...] = ()
    verified: bool | None = None

    @property
    def median(self) -> Measurement:
        ordered = sorted(self.runs, key=lambda run: run.mb_per_s)
        return ordered[(len(ordered) - 1) // 2]

    @property
    def mb_per_s(self) -> float:
        return self.median.mb_per_s

    @property
    def ratio(self) -> float:
        run = self.median
        return run.input_bytes / max(run.output_bytes, 1)

    @property
    def peak_rss_mib(self) -> float:
        return max(run.peak_rss_bytes for run in self.runs) / MIB

    @property
    def restore_mb_per_s(self) -> float | None:
        if not self.restores:
            return None
        return statistics.median(run.mb_per_s for run in self.restores)

    def as_json(self) -> dict[str, Any]:
        run = self.median
        return {
            "combination": self.combination.label,
            "codec": self.combination.codec_label,
            "compressor": self.combination.codec.name,
            "options": dict(self.combination.codec.options),
            "cipher": self.combination.cipher,
            "input_bytes": run.input_bytes,
            "output_bytes": run.output_bytes,
            "ratio": round(self.ratio, 4),
            "mb_per_s": round(self.mb_per_s, 2),
            "seconds": round(run.seconds, 4),
            "cpu_seconds": round(run.cpu_seconds, 4),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "sample_bytes": self.sample_bytes,
            "reduced_sample": self.reduced,
            "stages_busy_seconds": {name: round(busy, 4) for name, busy in run.stages.items()},
            "runs": [
                {
                    "mb_per_s": round(r.mb_per_s, 2),
                    "seconds": round(r.seconds, 4),
                    "cpu_seconds": round(r.cpu_seconds, 4),
                    "peak_rss_mib": round(r.peak_rss_bytes / MIB, 1),
                }
                for r in self.runs
            ],
            "verified": self.verified,
            "restore_mb_per_s": None if self.restore_mb_per_s is None else round(self.restore_mb_per_s, 2),
        }


# --- the parent side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchPlan:
    """What ``run_bench`` does: combinations over ``input_path`` (its first ``size`` bytes)."""

    combinations: Sequence[Combination]
    input_path: Path
    size: int
    repeat: int = 1
    verify: bool = False
    full: bool = False
    """Measure slow codecs on the whole sample too."""
    workdir: Path | None = None
    """Where ``--verify`` keeps the stored object between its two runs (default: the temp directory)."""


Progress = Callable[[str], None]


def sample_sizes(plan: BenchPlan, plugins: Plugins) -> dict[str, int]:
    """Bytes each codec is measured on: the whole sample, or less for a codec whose speed (probed on
    ``PROBE_SIZE`` bytes here) would make one run take longer than ``BUDGET_SECONDS``."""
    with open(plan.input_path, "rb") as handle:
        probe = handle.read(min(PROBE_SIZE, plan.size))
    sizes: dict[str, int] = {}
    for combination in plan.combinations:
        key = str(combination.codec)
        if key in sizes:
            continue
        sizes[key] = plan.size
        if plan.full or plan.size <= MIN_SAMPLE or not probe:
            continue
        codec = plugins.compressors().get(combination.codec.name).compressor(combination.codec.options)
        started = time.process_time()
        codec.update(probe)
        codec.finish()
        rate = len(probe) / max(time.process_time() - started, 1e-6)
        if plan.size / rate > BUDGET_SECONDS:
            fits = MIN_SAMPLE
            while fits * 2 <= rate * BUDGET_SECONDS and fits * 2 < plan.size:
                fits *= 2
            sizes[key] = fits
    return sizes


def run_bench(plan: BenchPlan, plugins: Plugins, progress: Progress | None = None) -> list[Result]:
    """Run every combination ``plan.repeat`` times, each run in a fresh child process, in rounds
    (every combination once per round, so that a slow moment of the machine hits one run of several
    combinations rather than every run of one); returns the results in the order of
    ``plan.combinations``, each with the figures of its median run."""
    if plan.repeat < 1:
        raise ConfigError("--repeat must be at least 1")
    sizes = sample_sizes(plan, plugins)
    expected = {size: _sha256_prefix(plan.input_path, size) for size in set(sizes.values())} if plan.verify else {}
    if not plan.verify:
        _warm(plan.input_path, max(sizes.values()))  # every run reads from the page cache
    key = os.urandom(32).hex()
    workdir = plan.workdir or Path(tempfile.gettempdir())
    runs: list[list[Measurement]] = [[] for _ in plan.combinations]
    restores: list[list[Measurement]] = [[] for _ in plan.combinations]
    verified: list[bool | None] = [None for _ in plan.combinations]
    total = len(plan.combinations) * plan.repeat
    for attempt in range(plan.repeat):
        for index, combination in enumerate(plan.combinations):
            size = sizes[str(combination.codec)]
            output = workdir / f".bench-object-{os.getpid()}-{index}-{attempt}" if plan.verify else None
            try:
                job = _job("backup", combination, plan.input_path, size, key, output)
                run = Measurement.from_json(_child(job))
                runs[index].append(run)
                if output is not None:
                    restore = Measurement.from_json(_child(_job("restore", combination, output, None, key, None)))
                    restores[index].append(restore)
                    good = restore.sha256 == expected[size]
                    verified[index] = good and verified[index] is not False
            finally:
                if output is not None:
                    output.unlink(missing_ok=True)
            if progress is not None:
                done = attempt * len(plan.combinations) + index + 1
                progress(f"[{done}/{total}] {combination.label} (run {attempt + 1}): {run.mb_per_s:.1f} MB/s")
    results = []
    for index, combination in enumerate(plan.combinations):
        size = sizes[str(combination.codec)]
        results.append(
            Result(combination, size, size < plan.size, tuple(runs[index]), tuple(restores[index]), verified[index])
        )
    return results


def key_setup_seconds() -> dict[str, float]:
    """Seconds one passphrase key derivation takes here (done once per object, independent of its size)."""
    timings = {}
    for kdf in ("argon2id", "scrypt"):
        params = new_kdf_params(kdf)
        started = time.perf_counter()
        derive_passphrase_key(b"backstream bench", params)
        timings[kdf] = time.perf_counter() - started
    return timings


_ARGON2 = ARGON2ID_DEFAULTS
KDF_LABELS = {
    "argon2id": f"Argon2id (t={_ARGON2['t']}, m={_ARGON2['m'] // 1024} MiB, p={_ARGON2['p']})",
    "scrypt": "scrypt (N=2^{ln}, r={r}, p={p})".format(**SCRYPT_DEFAULTS),
}
"""How the passphrase KDFs are described in the output (the default parameters)."""


def _job(
    mode: str, combination: Combination, path: Path, limit: int | None, key: str, output: Path | None
) -> dict[str, Any]:
    return {
        "mode": mode,
        "codec": combination.codec.name,
        "options": dict(combination.codec.options),
        "cipher": combination.cipher,
        "input": str(path),
        "limit": limit,
        "key": key,
        "output": None if output is None else str(output),
    }


def _child(job: Mapping[str, Any]) -> dict[str, Any]:
    """Run one job in a fresh interpreter; its one JSON line on stdout is the answer."""
    completed = subprocess.run(
        [sys.executable, "-m", "backstream.bench.runner"],
        input=json.dumps(job).encode(),
        capture_output=True,
        check=False,
    )
    try:
        answer: dict[str, Any] = json.loads(completed.stdout.decode().strip().splitlines()[-1])
    except (IndexError, ValueError, UnicodeDecodeError):
        lines = completed.stderr.decode(errors="replace").strip().splitlines()
        detail = lines[-1] if lines else f"exit status {completed.returncode}"
        raise BackstreamError(f"the bench child process failed: {detail}") from None
    if "error" in answer:
        raise BackstreamError(str(answer["error"]))
    return answer


def _warm(path: Path, size: int) -> None:
    """Read the first ``size`` bytes once, so that every measured run reads from the page cache."""
    with open(path, "rb") as handle:
        while size > 0 and (block := handle.read(min(size, 4 * MIB))):
            size -= len(block)


def _sha256_prefix(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while size > 0 and (block := handle.read(min(size, 4 * MIB))):
            digest.update(block)
            size -= len(block)
    return digest.hexdigest()


# --- the child side ------------------------------------------------------------------------------


class BenchKeys:
    """A key provider for bench objects: the data key wrapped (AES key wrap) under a throwaway
    in-memory key. Cheap on purpose: the bench measures per-byte cost, not per-object key setup."""

    scheme = KEY_SCHEME

    def __init__(self, key: bytes) -> None:
        self._key = key

    async def wrap(self, data_key: bytes, *, key_ref: str, context: Mapping[str, str]) -> Stanza:
        from cryptography.hazmat.primitives.keywrap import aes_key_wrap

        return Stanza(scheme=KEY_SCHEME, key_ref=key_ref, wrapped_key=aes_key_wrap(self._key, data_key))

    async def unwrap(self, stanza: Stanza, *, context: Mapping[str, str]) -> bytes:
        from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

        try:
            return aes_key_unwrap(self._key, stanza.wrapped_key)
        except InvalidUnwrap:
            raise KeyProviderError("not a bench object of this run") from None


class _Discard:
    async def write(self, chunk: bytes) -> None:
        pass


@asynccontextmanager
async def discard_sink() -> AsyncIterator[ByteWriter]:
    """A sink that drops everything (the pipeline still counts and hashes what reaches it)."""
    yield _Discard()


@asynccontextmanager
async def file_prefix(path: str | os.PathLike[str], limit: int | None) -> AsyncIterator[AsyncIterator[bytes]]:
    """Stream the first ``limit`` bytes of a file (all of it for None), read in worker threads."""
    handle = await anyio.to_thread.run_sync(open, os.fspath(path), "rb")

    async def chunks() -> AsyncIterator[bytes]:
        left = limit
        while left is None or left > 0:
            size = READ_SIZE if left is None else min(READ_SIZE, left)
            data = await anyio.to_thread.run_sync(handle.read, size)
            if not data:
                return
            if left is not None:
                left -= len(data)
            yield data

    try:
        yield chunks()
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(handle.close)


def _context(codec: str) -> dict[str, str]:
    return {"backup_id": "bench", "database": "bench", "codec": codec}


async def _backup(job: Mapping[str, Any]) -> dict[str, Any]:
    """compress (-> encrypt) the input into a discarding sink, or a file for ``--verify``."""
    plugins = Plugins.load()
    name = str(job["codec"])
    transforms = [Transform(f"compress:{name}", plugins.compressors().get(name).compressor(job["options"]))]
    if job["cipher"] != NO_CIPHER:
        encryptor = await new_encryptor(
            [KEY_SCHEME],
            providers={KEY_SCHEME: BenchKeys(bytes.fromhex(job["key"]))},
            cipher=plugins.ciphers().get(job["cipher"]),
            context=_context(name),
            audit=AuditLog(enabled=False),
        )
        transforms.append(Transform("encrypt", encryptor))
    sink = file_sink(job["output"], fsync=False) if job["output"] else discard_sink()
    pipeline = Pipeline(file_prefix(job["input"], job["limit"]), transforms, sink)
    return await _measured(pipeline)


async def _restore(job: Mapping[str, Any]) -> dict[str, Any]:
    """(decrypt ->) decompress a stored bench object; the sha256 is that of the plaintext."""
    plugins = Plugins.load()
    name = str(job["codec"])
    before = _usage()
    started = time.perf_counter()
    async with file_prefix(job["input"], None) as stored:
        data: AsyncIterator[bytes] = stored
        transforms = []
        if job["cipher"] != NO_CIPHER:
            opened = await open_encrypted(
                stored,
                providers={KEY_SCHEME: BenchKeys(bytes.fromhex(job["key"]))},
                ciphers=[plugins.ciphers().get(job["cipher"])],
                expect_context=_context(name),
                audit=AuditLog(enabled=False),
            )
            transforms.append(Transform("decrypt", opened.codec))
            data = opened.rest
        transforms.append(Transform(f"decompress:{name}", plugins.compressors().get(name).decompressor()))
        result = await Pipeline(iterable_source(data), transforms, discard_sink()).run()
    stored_size = os.path.getsize(job["input"])
    return _report(result.bytes_out, stored_size, started, before, result.stages, result.sha256)


async def _measured(pipeline: Pipeline) -> dict[str, Any]:
    before = _usage()
    started = time.perf_counter()
    result = await pipeline.run()
    return _report(result.bytes_in, result.bytes_out, started, before, result.stages, result.sha256)


def _usage() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _report(
    input_bytes: int,
    output_bytes: int,
    started: float,
    cpu_before: float,
    stages: Sequence[StageMetrics],
    sha256: str,
) -> dict[str, Any]:
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "input_bytes": input_bytes,
        "output_bytes": output_bytes,
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu_before,
        "peak_rss_bytes": peak_rss_bytes(usage),
        "stages": {stage.name: stage.busy_seconds for stage in stages},
        "sha256": sha256,
    }


def peak_rss_bytes(usage: resource.struct_rusage | None = None) -> int:
    """This process's own peak resident set size: ``VmHWM`` from /proc where there is one.

    ``ru_maxrss`` is not used on Linux because execve carries the parent's high-water mark over
    into the child (the vfork-ed child shares the parent's memory until exec), so a child of a
    large parent would report the parent's peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    usage = usage or resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def child_main() -> int:
    """The child process: one JSON job on stdin, one JSON line on stdout (``{"error": ...}`` on failure)."""
    try:
        job = json.loads(sys.stdin.buffer.read())
        run = _restore if job["mode"] == "restore" else _backup
        answer = anyio.run(run, job, backend="asyncio")
    except BackstreamError as exc:
        answer = {"error": str(exc)}
    except (OSError, ValueError, KeyError) as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(answer))
    return 1 if "error" in answer else 0


if __name__ == "__main__":
    sys.exit(child_main())


__all__ = [
    "BUDGET_SECONDS",
    "MIN_SAMPLE",
    "NO_CIPHER",
    "BenchKeys",
    "BenchPlan",
    "Combination",
    "Measurement",
    "Result",
    "check_combinations",
    "default_ciphers",
    "default_codecs",
    "discard_sink",
    "file_prefix",
    "key_setup_seconds",
    "parse_ciphers",
    "parse_codecs",
    "run_bench",
    "sample_sizes",
]
