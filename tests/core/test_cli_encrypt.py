"""``backstream encrypt`` / ``decrypt`` / ``keys`` as a user runs them: real processes, files and pipes.

Bad input ends with one ``backstream: error:`` line on stderr, a non-zero exit and no file at OUT.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from backstream.cli.main import main

FAST = ["--kdf-param", "t=1", "--kdf-param", "m=1024", "--kdf-param", "p=1"]
DATA = os.urandom(5 * 65536 + 321)


ENV_NAMES = ("BACKSTREAM_PASSPHRASE", "BACKSTREAM_KEYSTORE_PASSPHRASE", "BACKSTREAM_NEW_PASSPHRASE")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    values = {key: value for key, value in os.environ.items() if key not in ENV_NAMES}
    values["BACKSTREAM_AUDIT_LOG"] = str(tmp_path / "audit.log")
    values["BACKSTREAM_PASSPHRASE"] = "cli secret"
    return values


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain.bin"
    path.write_bytes(DATA)
    return path


class Cli:
    """Runs ``backstream`` in this process (fast) or, with ``stdin=``/``process=True``, as a real process."""

    def __init__(
        self, env: dict[str, str], capfd: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.env = env
        self._capfd = capfd
        self._monkeypatch = monkeypatch

    def __call__(
        self, *args: str | Path, stdin: bytes | None = None, process: bool = False, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [str(arg) for arg in args]
        if process or stdin is not None:
            result = subprocess.run(
                [sys.executable, "-m", "backstream.cli.main", *argv],
                input=stdin if stdin is not None else b"",
                capture_output=True,
                env=self.env,
                timeout=120,
            )
        else:
            for name in ENV_NAMES:
                self._monkeypatch.delenv(name, raising=False)
            for name, value in self.env.items():
                self._monkeypatch.setenv(name, value)
            self._capfd.readouterr()
            code = main(argv)
            out, err = self._capfd.readouterr()
            result = subprocess.CompletedProcess(argv, code, out, err)
        if check:
            assert result.returncode == 0, result.stderr.decode()
        return result


@pytest.fixture
def backstream(env: dict[str, str], capfdbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(env, capfdbinary, monkeypatch)


def assert_one_line_error(result: subprocess.CompletedProcess[bytes], *, contains: str = "") -> str:
    assert result.returncode != 0
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("backstream: error: ")
    assert contains in lines[0]
    return lines[0]


def body_sha256(blob: bytes) -> str:
    from backstream.crypto import parse_header
    from backstream.crypto.header import _Cursor, _parse

    header = _parse(_Cursor(blob, complete=False))
    assert parse_header(header.raw) == header
    return hashlib.sha256(blob[len(header.raw) :]).hexdigest()


def test_passphrase_round_trip_between_files(tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli) -> None:
    backstream("encrypt", "-i", plain, "-o", tmp_path / "obj.bse", "--key", "passphrase", *FAST)
    backstream("decrypt", "-i", tmp_path / "obj.bse", "-o", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == DATA
    assert not list(tmp_path.glob(".*.partial"))


def test_passphrase_round_trip_through_stdin_and_stdout(env: dict[str, str], backstream: Cli) -> None:
    sealed = backstream("encrypt", "--key", "passphrase", "--cipher", "aes-256-gcm", *FAST, stdin=DATA).stdout
    assert sealed.startswith(b"\x89BSE\r\n\x1a\n")
    assert backstream("decrypt", stdin=sealed).stdout == DATA


def test_passphrase_from_a_file(tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli) -> None:
    del env["BACKSTREAM_PASSPHRASE"]
    (tmp_path / "pass").write_text("file secret\n")
    args = ["--passphrase-file", tmp_path / "pass"]
    backstream("encrypt", "-i", plain, "-o", tmp_path / "obj.bse", "-k", "passphrase", *FAST, *args)
    assert backstream("decrypt", "-i", tmp_path / "obj.bse", *args).stdout == DATA


def test_local_keystore_round_trip(tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli) -> None:
    keystore = tmp_path / "keystore.json"
    created = backstream("keys", "create", "--keystore", keystore, *FAST).stdout.decode().strip()
    assert created.startswith(f"local:{keystore}#k-")
    backstream("encrypt", "-i", plain, "-o", tmp_path / "obj.bse", "--key", f"local:{keystore}")
    assert backstream("decrypt", "-i", tmp_path / "obj.bse").stdout == DATA


def test_two_keystores_and_a_moved_one(tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    for path in (first, second):
        backstream("keys", "create", "--keystore", path, *FAST)
    obj = tmp_path / "obj.bse"
    backstream("encrypt", "-i", plain, "-o", obj, "-k", f"local:{first}", "-k", f"local:{second}")
    first.rename(tmp_path / "moved.json")
    second.unlink()
    assert_one_line_error(backstream("decrypt", "-i", obj, check=False), contains="in no keystore")
    restored = backstream("decrypt", "-i", obj, "--keystore", tmp_path / "moved.json")
    assert restored.stdout == DATA


def test_a_tampered_object_fails_with_one_line_and_leaves_no_file(
    tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli
) -> None:
    obj = tmp_path / "obj.bse"
    backstream("encrypt", "-i", plain, "-o", obj, "--key", "passphrase", *FAST)
    blob = bytearray(obj.read_bytes())
    blob[-3 * 65552] ^= 0x01  # inside a middle chunk
    obj.write_bytes(bytes(blob))
    result = backstream("decrypt", "-i", obj, "-o", tmp_path / "out.bin", process=True, check=False)
    assert result.returncode == 3
    assert_one_line_error(result, contains="failed authentication")
    assert not (tmp_path / "out.bin").exists()
    assert not list(tmp_path.glob(".*.partial"))


def test_a_tampered_object_to_stdout_exits_non_zero(
    tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli
) -> None:
    obj = tmp_path / "obj.bse"
    backstream("encrypt", "-i", plain, "-o", obj, "--key", "passphrase", *FAST)
    blob = bytearray(obj.read_bytes())
    blob[-100] ^= 0x80  # the last chunk
    result = backstream("decrypt", stdin=bytes(blob), check=False)
    assert_one_line_error(result, contains="chunk 5")
    assert DATA.startswith(result.stdout)  # only authenticated plaintext, if any
    assert len(result.stdout) <= 5 * 65536


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda b: b[:-1], "chunk 5"),
        (lambda b: b + b"\x00", "chunk 5"),
        (lambda b: b[:8] + b"\x07" + b[9:], "unsupported encrypted format version 7"),
        (lambda b: b[:9] + b"\x63" + b[10:], "unknown cipher suite 99"),
        (lambda b: b"not encrypted at all", "bad magic"),
        (lambda b: b"", "input is empty"),
    ],
    ids=["truncated", "trailing", "version", "suite", "not-encrypted", "empty"],
)
def test_bad_objects_fail_cleanly(
    tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli, mangle: object, message: str
) -> None:
    obj = tmp_path / "obj.bse"
    backstream("encrypt", "-i", plain, "-o", obj, "--key", "passphrase", *FAST)
    obj.write_bytes(mangle(obj.read_bytes()))  # type: ignore[operator]
    result = backstream("decrypt", "-i", obj, "-o", tmp_path / "out.bin", check=False)
    assert_one_line_error(result, contains=message)
    assert not (tmp_path / "out.bin").exists()


def test_wrong_passphrase_fails_with_one_line(
    tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli
) -> None:
    obj = tmp_path / "obj.bse"
    backstream("encrypt", "-i", plain, "-o", obj, "--key", "passphrase", *FAST)
    env["BACKSTREAM_PASSPHRASE"] = "wrong"
    result = backstream("decrypt", "-i", obj, "-o", tmp_path / "out.bin", check=False)
    assert_one_line_error(result, contains="wrong passphrase or key")
    assert not (tmp_path / "out.bin").exists()


def test_wrong_context_fails_with_one_line(tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli) -> None:
    obj = tmp_path / "obj.bse"
    backstream("encrypt", "-i", plain, "-o", obj, "-k", "passphrase", "--context", "backup_id=b1", *FAST)
    result = backstream("decrypt", "-i", obj, "--context", "backup_id=b2", check=False)
    assert_one_line_error(result, contains="wrong object context: backup_id is 'b1', expected 'b2'")
    assert backstream("decrypt", "-i", obj, "--context", "backup_id=b1").stdout == DATA


def test_no_passphrase_is_a_config_error(tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli) -> None:
    del env["BACKSTREAM_PASSPHRASE"]
    result = backstream("encrypt", "-i", plain, "-o", tmp_path / "o", "-k", "passphrase", check=False)
    assert result.returncode == 2
    assert_one_line_error(result, contains="no passphrase")


def test_a_passphrase_with_another_key_is_refused(
    tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli
) -> None:
    backstream("keys", "create", "--keystore", tmp_path / "ks.json", *FAST)
    result = backstream("encrypt", "-i", plain, "-k", "passphrase", "-k", f"local:{tmp_path / 'ks.json'}", check=False)
    assert_one_line_error(result, contains="must be the only key")


def test_a_missing_input_fails_before_asking_for_keys(tmp_path: Path, env: dict[str, str], backstream: Cli) -> None:
    del env["BACKSTREAM_PASSPHRASE"]
    result = backstream("encrypt", "-i", tmp_path / "missing", "-k", "passphrase", check=False)
    assert_one_line_error(result, contains="cannot read")


def test_rotate_keeps_the_body_and_swaps_the_key(
    tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli
) -> None:
    obj = tmp_path / "obj.bse"
    backstream("encrypt", "-i", plain, "-o", obj, "--key", "passphrase", *FAST)
    before = obj.read_bytes()
    env["BACKSTREAM_NEW_PASSPHRASE"] = "rotated secret"
    backstream("keys", "rotate", "-i", obj, "--key", "passphrase", *FAST)  # in place
    after = obj.read_bytes()
    assert after != before
    assert body_sha256(after) == body_sha256(before)
    del env["BACKSTREAM_NEW_PASSPHRASE"]
    assert_one_line_error(backstream("decrypt", "-i", obj, check=False), contains="wrong passphrase")
    env["BACKSTREAM_PASSPHRASE"] = "rotated secret"
    assert backstream("decrypt", "-i", obj).stdout == DATA


def test_rotate_to_a_keystore_key_into_a_new_file(
    tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli
) -> None:
    obj, rotated = tmp_path / "obj.bse", tmp_path / "rotated.bse"
    backstream("encrypt", "-i", plain, "-o", obj, "--key", "passphrase", *FAST)
    ref = backstream("keys", "create", "--keystore", tmp_path / "ks.json", *FAST).stdout.decode().strip()
    backstream("keys", "rotate", "-i", obj, "-o", rotated, "--key", ref)
    assert body_sha256(rotated.read_bytes()) == body_sha256(obj.read_bytes())
    shown = json.loads(backstream("keys", "show", "-i", rotated, "--json").stdout)
    assert [s["key_ref"] for s in shown["stanzas"]] == [ref]
    assert backstream("decrypt", "-i", rotated).stdout == DATA


def test_keys_show_prints_the_header(tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli) -> None:
    obj = tmp_path / "obj.bse"
    backstream("encrypt", "-i", plain, "-o", obj, "-k", "passphrase", "--context", "database=shop", *FAST)
    del env["BACKSTREAM_PASSPHRASE"]  # reading a header needs no key
    shown = json.loads(backstream("keys", "show", "-i", obj, "--json").stdout)
    assert shown["cipher"] == "chacha20-poly1305" and shown["format_version"] == 1
    assert shown["context"]["database"] == "shop" and "created_at" in shown["context"]
    assert shown["stanzas"][0]["scheme"] == "passphrase"
    text = backstream("keys", "show", "-i", obj).stdout.decode()
    assert f"object id:   {shown['object_id']}" in text


def test_every_key_operation_lands_in_the_audit_log(
    tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli
) -> None:
    obj = tmp_path / "obj.bse"
    ref = backstream("keys", "create", "--keystore", tmp_path / "ks.json", *FAST).stdout.decode().strip()
    backstream("encrypt", "-i", plain, "-o", obj, "-k", ref)
    backstream("decrypt", "-i", obj, "-o", tmp_path / "out")
    backstream("keys", "rotate", "-i", obj, "-k", ref)
    entries = [json.loads(line) for line in Path(env["BACKSTREAM_AUDIT_LOG"]).read_text().splitlines()]
    assert [e["op"] for e in entries] == ["create", "wrap", "unwrap", "unwrap", "wrap", "rotate"]
    assert entries[0]["key_ref"] == ref
    assert entries[1]["object"] == str(obj)


def test_decrypting_an_encrypted_zstd_file_gives_the_standard_zstd_file(
    tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli
) -> None:
    zstd = shutil.which("zstd")
    assert zstd, "the zstd command-line tool is needed for this test"
    subprocess.run([zstd, "-q", "-3", str(plain), "-o", str(tmp_path / "backup.zst")], check=True)
    backstream("encrypt", "-i", tmp_path / "backup.zst", "-o", tmp_path / "backup.zst.bse", "-k", "passphrase", *FAST)
    backstream("decrypt", "-i", tmp_path / "backup.zst.bse", "-o", tmp_path / "restored.zst")
    assert (tmp_path / "restored.zst").read_bytes() == (tmp_path / "backup.zst").read_bytes()
    out = subprocess.run([zstd, "-q", "-d", "-c", str(tmp_path / "restored.zst")], check=True, capture_output=True)
    assert out.stdout == DATA


def test_decrypt_writes_into_a_fifo_and_leaves_it_a_fifo(
    tmp_path: Path, plain: Path, env: dict[str, str], backstream: Cli
) -> None:
    obj, fifo = tmp_path / "obj.bse", tmp_path / "pipe"
    backstream("encrypt", "-i", plain, "-o", obj, "-k", "passphrase", *FAST)
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    try:
        backstream("decrypt", "-i", obj, "-o", fifo)
    finally:
        reader.join(timeout=30)
    assert received == [DATA]
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # not replaced by a regular file (think -o /dev/null)


def test_sigterm_stops_an_encrypt_whose_stdin_stays_open_and_silent(tmp_path: Path, env: dict[str, str]) -> None:
    """A writer that sends nothing and never closes its end must not hold a stop up."""
    argv = ["encrypt", "--key", "passphrase", *FAST, "-o", str(tmp_path / "o")]
    process = subprocess.Popen(
        [sys.executable, "-m", "backstream.cli.main", *argv],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert process.stdin is not None
        process.stdin.write(b"some bytes, then silence")
        process.stdin.flush()
        time.sleep(1.5)  # started, key derived, waiting on stdin
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert not (tmp_path / "o").exists()
