"""``backstream bench`` as a user runs it: real child processes, real codecs and ciphers, small samples.

Also the sample generator it measures on: deterministic, exactly the requested size, about 4x with zstd -3.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zstandard
from backstream.bench.runner import BenchPlan, Combination, Measurement, Result, parse_codecs, run_bench, sample_sizes
from backstream.bench.sample import generate, write_sample
from backstream.cli.main import main
from backstream.jobs.common import CompressionSpec
from backstream.plugins import Plugins
from hypothesis import given, settings
from hypothesis import strategies as st

MiB = 1024 * 1024
FIELDS = {
    "combination",
    "codec",
    "compressor",
    "options",
    "cipher",
    "input_bytes",
    "output_bytes",
    "ratio",
    "mb_per_s",
    "seconds",
    "cpu_seconds",
    "peak_rss_mib",
    "sample_bytes",
    "reduced_sample",
    "stages_busy_seconds",
    "runs",
    "verified",
    "restore_mb_per_s",
}


def bench(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["bench", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def four_combinations() -> list[dict[str, Any]]:
    """zstd:3 and none, each unencrypted and with aes-256-gcm, on 4 MiB of sample (run once)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["bench", "--size", "4MiB", "--codecs", "zstd:3,none", "--ciphers", "none,aes-256-gcm", "--json"])
    assert code == 0
    rows: list[dict[str, Any]] = json.loads(out.getvalue())
    return rows


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["combination"]: row for row in rows}


# --- the command ---------------------------------------------------------------------------------


def test_json_has_one_object_per_combination_with_every_field(four_combinations: list[dict[str, Any]]) -> None:
    assert sorted(by_name(four_combinations)) == [
        "none + aes-256-gcm",
        "none + none",
        "zstd:3 + aes-256-gcm",
        "zstd:3 + none",
    ]
    for row in four_combinations:
        assert set(row) == FIELDS


def test_every_combination_reads_the_whole_sample_and_reports_positive_figures(
    four_combinations: list[dict[str, Any]],
) -> None:
    for row in four_combinations:
        assert row["input_bytes"] == row["sample_bytes"] == 4 * MiB
        assert row["reduced_sample"] is False
        assert row["mb_per_s"] > 0
        assert row["seconds"] > 0
        assert 0 < row["cpu_seconds"] < 60
        assert 10 < row["peak_rss_mib"] < 1024
        assert row["verified"] is None  # no --verify


def test_ratio_is_about_one_without_compression(four_combinations: list[dict[str, Any]]) -> None:
    rows = by_name(four_combinations)
    assert rows["none + none"]["ratio"] == 1.0
    assert rows["none + none"]["output_bytes"] == 4 * MiB
    # Encryption adds the header and a 16-byte tag per 64 KiB: a little below 1.
    assert 0.99 < rows["none + aes-256-gcm"]["ratio"] < 1.0


def test_zstd_compresses_the_sample_more_than_twofold(four_combinations: list[dict[str, Any]]) -> None:
    rows = by_name(four_combinations)
    assert rows["zstd:3 + none"]["ratio"] > 2
    assert rows["zstd:3 + aes-256-gcm"]["ratio"] > 2


def test_results_are_sorted_fastest_first(four_combinations: list[dict[str, Any]]) -> None:
    speeds = [row["mb_per_s"] for row in four_combinations]
    assert speeds == sorted(speeds, reverse=True)


def test_stages_of_the_pipeline_are_reported(four_combinations: list[dict[str, Any]]) -> None:
    rows = by_name(four_combinations)
    assert set(rows["zstd:3 + aes-256-gcm"]["stages_busy_seconds"]) == {"source", "compress:zstd", "encrypt", "sink"}


def test_table_has_the_columns_a_hint_and_the_key_setup_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bench(capsys, "--size", "2MiB", "--codecs", "lz4", "--ciphers", "none,chacha20-poly1305")
    assert code == 0
    assert err == ""  # progress goes to stderr only on a terminal
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("COMBINATION"))
    assert header.split("  ")[0].strip() == "COMBINATION"
    for column in ("MB/S", "RATIO", "CPU S", "PEAK RSS MiB"):
        assert column in header
    rows = [line for line in lines if line.startswith("lz4 + ")]
    assert len(rows) == 2
    assert sum(line.startswith("hint: ") for line in lines) == 1
    assert any(line.startswith("per-object key setup") and "Argon2id" in line for line in lines)


def test_a_real_process_prints_only_json_on_stdout_and_nothing_on_stderr() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "backstream.cli.main", "bench", "--size", "1MiB", "--codecs", "none", "--json"],
        capture_output=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == b""
    rows = json.loads(completed.stdout)
    # Without --ciphers: no encryption and every available cipher suite.
    assert {row["cipher"] for row in rows} == {"none", "aes-256-gcm", "chacha20-poly1305"}


def test_verify_restores_every_output_and_compares_sha256(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = bench(
        capsys, "--size", "3MiB", "--codecs", "gzip:1", "--ciphers", "chacha20-poly1305", "--verify", "--json"
    )
    assert code == 0
    [row] = json.loads(out)
    assert row["verified"] is True
    assert row["restore_mb_per_s"] > 0


def test_input_file_is_measured_instead_of_the_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = b"".join(f"{n}\tsome row text {n % 97}\n".encode() for n in range(100_000))
    source = tmp_path / "dump.sql"
    source.write_bytes(data)
    code, out, _ = bench(
        capsys, "--input", str(source), "--codecs", "zstd:1", "--ciphers", "none", "--verify", "--json"
    )
    assert code == 0
    [row] = json.loads(out)
    assert row["input_bytes"] == len(data)
    assert row["ratio"] > 2
    assert row["verified"] is True
    assert source.read_bytes() == data


def test_input_with_size_measures_only_the_first_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "dump.sql"
    source.write_bytes(bytes(3 * MiB))
    code, out, _ = bench(
        capsys, "--input", str(source), "--size", "1MiB", "--codecs", "none", "--ciphers", "none", "--json"
    )
    assert code == 0
    assert json.loads(out)[0]["input_bytes"] == MiB


def test_unknown_codec_is_one_line_error_naming_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bench(capsys, "--codecs", "zstd:3,brotli", "--ciphers", "none")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "unknown compressor 'brotli'" in err
    assert "zstd" in err and "lz4" in err


def test_unknown_cipher_is_one_line_error_naming_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bench(capsys, "--codecs", "none", "--ciphers", "rot13")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "unknown cipher 'rot13'" in err
    assert "none, aes-256-gcm, chacha20-poly1305" in err


def test_bad_codec_option_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = bench(capsys, "--codecs", "zstd:99", "--ciphers", "none")
    assert code == 2
    assert err.count("\n") == 1
    assert "zstd level" in err


def test_missing_input_file_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = bench(capsys, "--input", str(tmp_path / "absent.sql"), "--codecs", "none", "--ciphers", "none")
    assert code != 0
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("backstream: error: cannot read") and "absent.sql" in err


def test_bad_size_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = bench(capsys, "--size", "lots", "--codecs", "none", "--ciphers", "none")
    assert code == 2
    assert err.count("\n") == 1
    assert "bad size 'lots'" in err


def test_codec_list_keeps_options_with_their_codec() -> None:
    specs = parse_codecs(["zstd:level=19,threads=2,lz4", "gzip:6"])
    assert specs == [
        CompressionSpec("zstd", {"level": "19", "threads": "2"}),
        CompressionSpec("lz4", {}),
        CompressionSpec("gzip", {"level": "6"}),
    ]


def test_slow_codecs_get_a_smaller_sample_and_fast_ones_the_whole(tmp_path: Path) -> None:
    path = tmp_path / "sample.sql"
    write_sample(path, 16 * MiB)
    combinations = [Combination(CompressionSpec("xz", {})), Combination(CompressionSpec("zstd", {"level": "1"}))]
    sizes = sample_sizes(BenchPlan(combinations, path, 16 * MiB), Plugins.load())
    assert sizes == {"xz": 8 * MiB, "zstd:level=1": 16 * MiB}
    full = sample_sizes(BenchPlan(combinations, path, 16 * MiB, full=True), Plugins.load())
    assert full == {"xz": 16 * MiB, "zstd:level=1": 16 * MiB}


def test_each_combination_runs_three_times_by_default_and_the_table_says_median(
    four_combinations: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert {len(row["runs"]) for row in four_combinations} == {3}
    code, out, _ = bench(capsys, "--size", "1MiB", "--codecs", "none", "--ciphers", "none")
    assert code == 0
    assert "median of 3 runs per combination" in out.splitlines()[0]


def test_repeat_one_is_one_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = bench(capsys, "--size", "1MiB", "--codecs", "none", "--ciphers", "none", "--repeat", "1", "--json")
    assert code == 0
    [row] = json.loads(out)
    assert len(row["runs"]) == 1


def test_runs_alternate_between_combinations_in_rounds(tmp_path: Path) -> None:
    path = tmp_path / "sample.sql"
    write_sample(path, MiB)
    combinations = [Combination(CompressionSpec("none", {})), Combination(CompressionSpec("lz4", {}))]
    seen: list[str] = []
    results = run_bench(BenchPlan(combinations, path, MiB, repeat=3), Plugins.load(), seen.append)
    assert [line.split("] ")[1].split(" (run")[0] for line in seen] == ["none + none", "lz4 + none"] * 3
    assert [len(result.runs) for result in results] == [3, 3]


def test_the_figures_are_those_of_the_median_run_so_one_outlier_does_not_move_them() -> None:
    def run(seconds: float) -> Measurement:
        return Measurement(
            input_bytes=100 * 10**6, output_bytes=10**6, seconds=seconds, cpu_seconds=1.0, peak_rss_bytes=1
        )

    result = Result(Combination(CompressionSpec("none", {})), 10**8, False, (run(1.0), run(9.0), run(1.25)))
    assert result.mb_per_s == pytest.approx(80.0)  # 100 MB in 1.25 s: not the 9 s outlier, not the best run


# --- the sample generator ------------------------------------------------------------------------


def test_sample_is_deterministic_for_a_seed() -> None:
    first = b"".join(generate(2 * MiB + 17, seed=7))
    again = b"".join(generate(2 * MiB + 17, seed=7))
    other = b"".join(generate(2 * MiB + 17, seed=8))
    assert first == again
    assert first != other


@settings(max_examples=8, deadline=None)
@given(size=st.integers(min_value=0, max_value=3 * MiB))
def test_sample_has_exactly_the_requested_size(size: int) -> None:
    assert sum(len(piece) for piece in generate(size)) == size


def test_smaller_sample_is_a_prefix_of_a_larger_one() -> None:
    small = b"".join(generate(MiB + 3))
    large = b"".join(generate(3 * MiB))
    assert large.startswith(small)


def test_sample_streams_in_bounded_pieces() -> None:
    assert max(len(piece) for piece in generate(8 * MiB)) < MiB


def test_sample_looks_like_a_pg_dump() -> None:
    text = b"".join(generate(2 * MiB)).decode()
    assert text.startswith("--\n-- PostgreSQL database dump")
    assert "COPY public.customers_p000001 (id, first_name" in text
    assert "\\.\n" in text
    assert "\\N" in text
    row = text.split("FROM stdin;\n", 1)[1].split("\n", 1)[0]
    assert row.split("\t")[0] == "1" and len(row.split("\t")) == 10 and "@" in row


def test_sample_is_about_four_times_compressible_with_zstd_3() -> None:
    data = b"".join(generate(8 * MiB))
    ratio = len(data) / len(zstandard.ZstdCompressor(level=3).compress(data))
    assert 3.5 <= ratio <= 5.5


def test_written_sample_matches_the_stream_and_its_sha256(tmp_path: Path) -> None:
    path = tmp_path / "sample.sql"
    digest = write_sample(path, MiB + 5, seed=3)
    data = path.read_bytes()
    assert data == b"".join(generate(MiB + 5, seed=3))
    assert digest == hashlib.sha256(data).hexdigest()
