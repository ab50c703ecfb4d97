"""Interoperability of the built-in compressors with the real command-line tools, both ways.

Our output must decompress with gzip/bzip2/xz/zstd/lz4 to identical bytes, and we must read theirs.
"""

from __future__ import annotations

import itertools
import random
import subprocess
from collections.abc import Iterable
from pathlib import Path

import anyio
import backstream
import pytest
from backstream import CompressorFactory, Pipeline, Transform, file_sink, file_source
from hypothesis import given, settings
from hypothesis import strategies as st

TOOLS: dict[str, list[str]] = {
    "gzip": ["/usr/bin/gzip"],
    "bz2": ["/usr/bin/bzip2"],
    "xz": ["/usr/bin/xz"],
    "zstd": ["/usr/bin/zstd", "-q"],
    "lz4": ["/usr/bin/lz4", "-q"],
}
NAMES = tuple(TOOLS)


def load_factories() -> dict[str, CompressorFactory]:
    registry = backstream.Plugins.load(autoload=False).compressors()
    return {name: registry.get(name) for name in NAMES}


FACTORIES = load_factories()


def text_like(size: int, seed: int = 11) -> bytes:
    """SQL-dump-like rows: compressible but not trivially so."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 9)).hex() for _ in range(500)]
    rows: list[str] = []
    length = 0
    while length < size:
        row = f"{rng.randint(1, 10**9)}\t{' '.join(rng.choices(words, k=rng.randint(3, 12)))}\t\\N\n"
        rows.append(row)
        length += len(row)
    return "".join(rows).encode()[:size]


PAYLOADS = {
    "empty": b"",
    "one-byte": b"x",
    "text": text_like(1_500_000),
    "random": random.Random(3).randbytes(300_000),
    "zeros": bytes(2_000_000),
}


def run(codec: backstream.Codec, chunks: Iterable[bytes]) -> bytes:
    return b"".join([codec.update(chunk) for chunk in chunks]) + codec.finish()


def ours_compress(name: str, data: bytes, **options: str) -> bytes:
    return run(FACTORIES[name].compressor(options), backstream.split(data))


def ours_decompress(name: str, data: bytes) -> bytes:
    return run(FACTORIES[name].decompressor(), backstream.split(data))


def tool(name: str, *args: str, data: bytes) -> bytes:
    """Run the real tool as a filter (stdin -> stdout); a non-zero exit fails the test."""
    result = subprocess.run([*TOOLS[name], *args], input=data, capture_output=True, check=False)
    assert result.returncode == 0, f"{TOOLS[name][0]} {' '.join(args)}: {result.stderr.decode()}"
    return result.stdout


def tool_compress(name: str, data: bytes, *args: str) -> bytes:
    return tool(name, "-c", *args, data=data)


def tool_decompress(name: str, data: bytes) -> bytes:
    return tool(name, "-d", "-c", data=data)


# --- our output, read by the tool ---------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("name", NAMES)
def test_the_tool_decompresses_our_output_to_identical_bytes(name: str, payload: str) -> None:
    data = PAYLOADS[payload]
    assert tool_decompress(name, ours_compress(name, data)) == data


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("gzip", {"level": "1"}),
        ("gzip", {"level": "9"}),
        ("bz2", {"level": "1"}),
        ("xz", {"level": "0"}),
        ("xz", {"level": "9"}),
        ("zstd", {"level": "1"}),
        ("zstd", {"level": "19"}),
        ("zstd", {"level": "22"}),
        ("zstd", {"level": "3", "threads": "2"}),
        ("lz4", {"level": "9"}),
        ("lz4", {"level": "16"}),
    ],
)
def test_the_tool_decompresses_our_output_at_other_settings(name: str, options: dict[str, str]) -> None:
    data = PAYLOADS["text"][:400_000]
    assert tool_decompress(name, ours_compress(name, data, **options)) == data


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=15, deadline=None)
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=10))
def test_the_tool_reads_our_output_whatever_the_input_chunking(name: str, data: bytes, cuts: list[int]) -> None:
    bounds = [0, *sorted(min(cut, len(data)) for cut in cuts), len(data)]
    chunks = [data[start:end] for start, end in itertools.pairwise(bounds)]
    assert tool_decompress(name, run(FACTORIES[name].compressor({}), chunks)) == data


@pytest.mark.parametrize("name", NAMES)
def test_the_tool_reads_our_concatenated_streams(name: str) -> None:
    first, second = PAYLOADS["text"][:100_000], PAYLOADS["random"][:50_000]
    stream = ours_compress(name, first) + ours_compress(name, second)
    assert tool_decompress(name, stream) == first + second


# --- the tool's output, read by us --------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("name", NAMES)
def test_we_decompress_the_tools_output(name: str, payload: str) -> None:
    data = PAYLOADS[payload]
    assert ours_decompress(name, tool_compress(name, data)) == data


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("gzip", ["-1"]),
        ("gzip", ["-9"]),
        ("bz2", ["-1"]),
        ("xz", ["-0"]),
        ("xz", ["--check=crc32"]),
        ("xz", ["--check=sha256"]),
        ("xz", ["--check=none"]),
        ("xz", ["--block-size=100KiB"]),
        ("xz", ["-T2", "--block-size=200KiB"]),
        ("zstd", ["-1"]),
        ("zstd", ["-19"]),
        ("zstd", ["--no-check"]),
        ("zstd", ["-T2", "-3"]),
        ("zstd", ["--long=27"]),
        ("lz4", ["-1"]),
        ("lz4", ["-9"]),
        ("lz4", ["-BD"]),
        ("lz4", ["-B4"]),
        ("lz4", ["-BX"]),
        ("lz4", ["--no-frame-crc"]),
    ],
)
def test_we_decompress_the_tools_output_at_other_settings(name: str, args: list[str]) -> None:
    data = PAYLOADS["text"]
    assert ours_decompress(name, tool_compress(name, data, *args)) == data


@pytest.mark.parametrize("name", NAMES)
def test_we_decompress_the_tools_concatenated_streams(name: str) -> None:
    parts = [PAYLOADS["text"][:200_000], b"", PAYLOADS["random"][:70_000], b"tail\n"]
    stream = b"".join(tool_compress(name, part) for part in parts)
    assert ours_decompress(name, stream) == b"".join(parts)


@pytest.mark.parametrize("name", NAMES)
def test_we_decompress_a_mix_of_tool_and_our_streams(name: str) -> None:
    stream = tool_compress(name, b"from the tool\n") + ours_compress(name, b"from backstream\n")
    assert ours_decompress(name, stream) == b"from the tool\nfrom backstream\n"
    assert tool_decompress(name, stream) == b"from the tool\nfrom backstream\n"


def test_we_decompress_gzip_output_that_carries_a_file_name(tmp_path: Path) -> None:
    path = tmp_path / "dump.sql"
    path.write_bytes(PAYLOADS["text"][:10_000])
    named = subprocess.run(["/usr/bin/gzip", "-c", "-N", str(path)], capture_output=True, check=True).stdout
    assert b"dump.sql" in named[:40]
    assert ours_decompress("gzip", named) == path.read_bytes()


@pytest.mark.parametrize("name", NAMES)
def test_truncated_tool_output_raises_integrity_error(name: str) -> None:
    stream = tool_compress(name, PAYLOADS["text"][:200_000])
    with pytest.raises(backstream.IntegrityError):
        ours_decompress(name, stream[: len(stream) - 7])


# --- through the pipeline, to and from files ------------------------------------------------------


async def _through_pipeline(source: Path, codec: backstream.Codec, target: Path) -> backstream.PipelineResult:
    pipeline = Pipeline(file_source(source), [Transform("codec", codec)], file_sink(target, fsync=False))
    return await pipeline.run()


@pytest.mark.parametrize("name", NAMES)
def test_a_pipeline_writes_a_file_the_tool_reads(name: str, tmp_path: Path) -> None:
    plain = tmp_path / "dump.sql"
    plain.write_bytes(PAYLOADS["text"])
    stored = tmp_path / f"dump.sql{FACTORIES[name].extension}"
    result = anyio.run(_through_pipeline, plain, FACTORIES[name].compressor({}), stored)
    assert result.bytes_in == len(PAYLOADS["text"])
    assert result.bytes_out == stored.stat().st_size
    restored = subprocess.run([*TOOLS[name], "-d", "-c", str(stored)], capture_output=True, check=True).stdout
    assert restored == PAYLOADS["text"]


@pytest.mark.parametrize("name", NAMES)
def test_a_pipeline_restores_a_file_the_tool_wrote(name: str, tmp_path: Path) -> None:
    stored = tmp_path / f"dump.sql{FACTORIES[name].extension}"
    stored.write_bytes(tool_compress(name, PAYLOADS["text"]))
    restored = tmp_path / "restored.sql"
    anyio.run(_through_pipeline, stored, FACTORIES[name].decompressor(), restored)
    assert restored.read_bytes() == PAYLOADS["text"]
