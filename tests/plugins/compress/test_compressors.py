"""Specification of the built-in compressors: round trips, concatenation, corruption, options, registry.

Interoperability with the command-line tools lives in test_compressor_interop.py.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping

import backstream
import pytest
from backstream import CompressorFactory, ConfigError, IntegrityError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NAMES = ("none", "gzip", "bz2", "xz", "zstd", "lz4")
COMPRESSED = tuple(name for name in NAMES if name != "none")
EXTENSIONS = {"none": "", "gzip": ".gz", "bz2": ".bz2", "xz": ".xz", "zstd": ".zst", "lz4": ".lz4"}
LEVELS = {"gzip": (1, 9), "bz2": (1, 9), "xz": (0, 9), "zstd": (1, 22), "lz4": (0, 16)}

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load_factories() -> dict[str, CompressorFactory]:
    registry = backstream.Plugins.load(autoload=False).compressors()
    return {name: registry.get(name) for name in NAMES}


FACTORIES = load_factories()


def run(codec: backstream.Codec, chunks: Iterable[bytes]) -> bytes:
    return b"".join([codec.update(chunk) for chunk in chunks]) + codec.finish()


def compress(name: str, data: bytes, options: Mapping[str, str] | None = None) -> bytes:
    return run(FACTORIES[name].compressor(options or {}), [data])


def decompress(name: str, data: bytes) -> bytes:
    return run(FACTORIES[name].decompressor(), [data])


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (empty pieces included, as any caller might pass them)."""
    offsets = sorted(min(point, len(data)) for point in points)
    bounds = [0, *offsets, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds)]


payloads = st.one_of(
    st.binary(max_size=4096),
    st.builds(lambda unit, count: unit * count, st.binary(min_size=1, max_size=40), st.integers(1, 4000)),
    st.builds(
        lambda seed, size: random.Random(seed).randbytes(size), st.integers(0, 2**32), st.integers(60_000, 140_000)
    ),
)
cut_points = st.lists(st.integers(0, 300_000), max_size=12)


def text_like(size: int, seed: int = 7) -> bytes:
    """SQL-dump-like rows: compressible but not trivially so."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 9)).hex() for _ in range(500)]
    rows: list[str] = []
    length = 0
    while length < size:
        text = " ".join(rng.choices(words, k=rng.randint(3, 12)))
        row = f"{rng.randint(1, 10**9)}\t{text}\t2024-05-{rng.randint(1, 28):02d}\n"
        rows.append(row)
        length += len(row)
    return "".join(rows).encode()[:size]


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@PROPERTY
@given(data=payloads, compress_cuts=cut_points, decompress_cuts=cut_points)
def test_round_trip_restores_the_data_for_any_chunking_in_both_directions(
    name: str, data: bytes, compress_cuts: list[int], decompress_cuts: list[int]
) -> None:
    compressed = run(FACTORIES[name].compressor({}), cut(data, compress_cuts))
    scaled = [point * max(1, len(compressed)) // 300_000 for point in decompress_cuts]
    assert run(FACTORIES[name].decompressor(), cut(compressed, scaled)) == data


ALL_LEVELS = [(name, level) for name, (low, high) in LEVELS.items() for level in range(low, high + 1)]


@pytest.mark.parametrize(("name", "level"), ALL_LEVELS)
def test_round_trip_works_at_every_level(name: str, level: int) -> None:
    payload = text_like(20_000) + random.Random(level).randbytes(5_000)
    assert decompress(name, compress(name, payload, {"level": str(level)})) == payload


@pytest.mark.parametrize("threads", [1, 2])
def test_zstd_round_trip_with_worker_threads(threads: int) -> None:
    payload = text_like(3_000_000)
    chunks = cut(payload, list(range(0, len(payload), backstream.CHUNK_SIZE)))
    compressed = run(FACTORIES["zstd"].compressor({"threads": str(threads)}), chunks)
    assert decompress("zstd", compressed) == payload


def test_round_trip_of_a_multi_megabyte_stream_in_64_kib_chunks() -> None:
    payload = text_like(2_500_000)
    chunks = list(backstream.split(payload))
    for name in NAMES:
        compressed = run(FACTORIES[name].compressor({}), chunks)
        assert run(FACTORIES[name].decompressor(), backstream.split(compressed)) == payload, name


def test_none_passes_bytes_through_unchanged() -> None:
    codec = FACTORIES["none"].compressor({})
    assert codec.update(b"abc") == b"abc"
    assert codec.finish() == b""
    assert decompress("none", b"") == b""


@pytest.mark.parametrize("name", COMPRESSED)
def test_compressing_nothing_gives_a_valid_empty_stream(name: str) -> None:
    compressed = compress(name, b"")
    assert compressed
    assert decompress(name, compressed) == b""


# --- concatenation ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@PROPERTY
@given(parts=st.lists(payloads, min_size=2, max_size=4), decompress_cuts=cut_points)
def test_concatenated_streams_decompress_to_the_concatenated_data(
    name: str, parts: list[bytes], decompress_cuts: list[int]
) -> None:
    stream = b"".join(compress(name, part) for part in parts)
    scaled = [point * len(stream) // 300_000 for point in decompress_cuts]
    assert run(FACTORIES[name].decompressor(), cut(stream, scaled)) == b"".join(parts)


def test_xz_accepts_stream_padding_between_and_after_streams() -> None:
    one = compress("xz", b"first ")
    two = compress("xz", b"second")
    assert decompress("xz", one + b"\0" * 8 + two + b"\0" * 4) == b"first second"


@pytest.mark.parametrize("padding", [1, 2, 3, 5])
def test_xz_rejects_stream_padding_that_is_not_a_multiple_of_four(padding: int) -> None:
    with pytest.raises(IntegrityError, match="padding"):
        decompress("xz", compress("xz", b"data") + b"\0" * padding)


def test_xz_rejects_padding_before_the_first_stream() -> None:
    with pytest.raises(IntegrityError):
        decompress("xz", b"\0" * 4 + compress("xz", b"data"))


@pytest.mark.parametrize("name", ["zstd", "lz4"])
def test_skippable_frames_are_skipped(name: str) -> None:
    skippable = (0x184D2A50).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"notes"
    stream = skippable + compress(name, b"payload") + skippable
    assert decompress(name, stream) == b"payload"


# --- truncation and corruption -----------------------------------------------------------------


@pytest.mark.parametrize("name", COMPRESSED)
@PROPERTY
@given(data=payloads, end=st.floats(0, 1, exclude_max=True), decompress_cuts=cut_points)
def test_a_truncated_stream_raises_integrity_error(
    name: str, data: bytes, end: float, decompress_cuts: list[int]
) -> None:
    compressed = compress(name, data)
    truncated = compressed[: int(end * len(compressed))]
    scaled = [point * len(truncated) // 300_000 for point in decompress_cuts]
    with pytest.raises(IntegrityError, match=r"truncated|corrupt"):
        run(FACTORIES[name].decompressor(), cut(truncated, scaled))


@pytest.mark.parametrize("name", COMPRESSED)
def test_an_empty_stream_raises_integrity_error(name: str) -> None:
    with pytest.raises(IntegrityError, match="empty"):
        decompress(name, b"")


@pytest.mark.parametrize("name", COMPRESSED)
def test_truncation_is_reported_by_finish_when_update_cannot_know(name: str) -> None:
    compressed = compress(name, text_like(50_000))
    codec = FACTORIES[name].decompressor()
    codec.update(compressed[:-1])
    with pytest.raises(IntegrityError, match="truncated"):
        codec.finish()


@pytest.mark.parametrize("name", COMPRESSED)
@PROPERTY
@given(data=payloads, where=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
def test_a_corrupted_byte_is_detected_or_harmless(name: str, data: bytes, where: float, mask: int) -> None:
    compressed = bytearray(compress(name, data))
    compressed[int(where * len(compressed))] ^= mask
    try:
        restored = decompress(name, bytes(compressed))
    except IntegrityError:
        return
    assert restored == data  # e.g. a gzip header's mtime byte, or deflate's padding bits


@pytest.mark.parametrize("name", COMPRESSED)
def test_a_corrupted_byte_in_the_middle_raises_integrity_error(name: str) -> None:
    compressed = bytearray(compress(name, text_like(200_000)))
    compressed[len(compressed) // 2] ^= 0x55
    with pytest.raises(IntegrityError, match="corrupt"):
        decompress(name, bytes(compressed))


@pytest.mark.parametrize("name", COMPRESSED)
def test_a_corrupted_checksum_raises_integrity_error(name: str) -> None:
    compressed = bytearray(compress(name, text_like(10_000)))
    # The last bytes are a checksum (gzip: ISIZE/CRC-32, bz2: stream CRC, xz: footer CRC-32,
    # zstd: XXH64 content checksum, lz4: XXH32 content checksum).
    compressed[-2] ^= 0x01
    with pytest.raises(IntegrityError):
        decompress(name, bytes(compressed))


@pytest.mark.parametrize("name", COMPRESSED)
def test_data_that_is_not_compressed_raises_integrity_error(name: str) -> None:
    with pytest.raises(IntegrityError):
        decompress(name, b"this is plain text, not a compressed stream\n" * 10)


TRAILING_GARBAGE = [
    (name, garbage)
    for name in COMPRESSED
    for garbage in (b"garbage!", b"\x01", b"\x00" * 16)
    if not (name == "xz" and garbage == b"\x00" * 16)  # valid .xz stream padding (tested above)
]


@pytest.mark.parametrize(("name", "garbage"), TRAILING_GARBAGE)
def test_trailing_garbage_after_a_complete_stream_raises_integrity_error(name: str, garbage: bytes) -> None:
    with pytest.raises(IntegrityError):
        decompress(name, compress(name, b"data") + garbage)


# --- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPRESSED)
def test_a_level_out_of_range_raises_config_error(name: str) -> None:
    low, high = LEVELS[name]
    for bad in (low - 1, high + 1):
        with pytest.raises(ConfigError, match=rf"{name} level must be an integer from {low} to {high}"):
            FACTORIES[name].compressor({"level": str(bad)})


@pytest.mark.parametrize("name", COMPRESSED)
@pytest.mark.parametrize("bad", ["fast", "6.5", "", True])
def test_a_level_that_is_not_an_integer_raises_config_error(name: str, bad: object) -> None:
    with pytest.raises(ConfigError, match=f"{name} level must be an integer"):
        FACTORIES[name].compressor({"level": bad})  # type: ignore[dict-item]


@pytest.mark.parametrize("name", COMPRESSED)
def test_a_level_given_as_an_int_is_accepted(name: str) -> None:
    level = LEVELS[name][0] + 1
    codec = FACTORIES[name].compressor({"level": level})  # type: ignore[dict-item]
    assert decompress(name, run(codec, [b"abc"])) == b"abc"


@pytest.mark.parametrize("name", NAMES)
def test_an_unknown_option_raises_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="levle"):
        FACTORIES[name].compressor({"levle": "3"})


@pytest.mark.parametrize("bad", ["-1", "65", "many"])
def test_zstd_threads_out_of_range_raises_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="zstd threads must be an integer from 0 to 64"):
        FACTORIES["zstd"].compressor({"threads": bad})


# --- registry ---------------------------------------------------------------------------------


def test_the_registry_lists_all_six_compressors_with_their_extensions() -> None:
    registry = backstream.Plugins.load(autoload=False).compressors()
    assert set(NAMES) <= set(registry.names())
    for name in NAMES:
        entry = registry.entry(name)
        assert entry.available, entry.unavailable_reason
        assert entry.factory.name == name
        assert entry.factory.extension == EXTENSIONS[name]


@pytest.mark.parametrize(("name", "module", "extra"), [("zstd", "zstandard", "zstd"), ("lz4", "lz4", "lz4")])
def test_optional_codecs_declare_their_module_and_extra(name: str, module: str, extra: str) -> None:
    entry = backstream.Plugins.load(autoload=False).compressors().entry(name)
    assert entry.requires == (module,)
    assert entry.extra == extra


@pytest.mark.parametrize("name", ["none", "gzip", "bz2", "xz"])
def test_standard_library_codecs_need_no_extra(name: str) -> None:
    entry = backstream.Plugins.load(autoload=False).compressors().entry(name)
    assert entry.requires == ()


def test_the_none_codec_asks_to_stay_off_worker_threads() -> None:
    assert FACTORIES["none"].compressor({}).threaded is False  # type: ignore[attr-defined]
    assert FACTORIES["none"].decompressor().threaded is False  # type: ignore[attr-defined]
