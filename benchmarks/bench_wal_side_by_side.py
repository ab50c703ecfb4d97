"""Issue 16: one ``wal-push`` of a real 16 MiB WAL segment against pgBackRest's ``archive-push``.

Run: ``python benchmarks/bench_wal_side_by_side.py [--rounds 7] [--storage local,s3]``
(results/wal_side_by_side.json; installs Debian's pgbackrest when missing).

The script starts its own PostgreSQL 15 (as ``tests/fixtures/postgres.py`` does, with
``full_page_writes`` on), writes WAL with ``pgbench`` (initialisation, then TPC-B updates), and
copies a dozen completed segments. Each round pushes one of them, under a new segment name, with
every method, in a rotating order, one process per push (as ``archive_command`` runs it):

- shell: ``zstd -3 | openssl enc -aes-256-cbc -pbkdf2`` into a file (no fsync);
- pgbackrest: ``archive-push`` (synchronous), ``compress-type=zst``, level 3, ``aes-256-cbc``;
- backstream: ``wal-push`` with zstd:3 and a passphrase (Argon2id per object), an X25519 public
  key, and no encryption.

``--storage s3`` repeats pgbackrest and backstream against a moto S3 server over TLS (a throwaway
certificate made with openssl; both tools verify it). Not working yet: pgbackrest 2.45 ends the
TLS handshake with moto's server ("unexpected eof while reading"), so the default is local only.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # the repository root, for tests.fixtures
import bench_pg_backup as pgb
import benchlib
from bench_side_by_side import rounds

from tests.fixtures.postgres import PostgresServer, start_postgres
from tests.fixtures.postgres import _free_port as free_port

BACKSTREAM = pgb.BACKSTREAM
PASSPHRASE = pgb.PASSPHRASE
SEGMENTS = 12
BUCKET = "walbench"


@dataclass(frozen=True)
class Method:
    name: str
    storage: str
    command: str
    """A shell command; ``{seg}`` is the segment's path, ``{n}`` the round."""


def ensure_pgbackrest() -> None:
    if not shutil.which("pgbackrest"):
        print("installing pgbackrest (apt-get)", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "pgbackrest"], check=True, stdout=subprocess.DEVNULL)


# --- WAL to push -------------------------------------------------------------------------------


def make_segments(server: PostgresServer, into: Path) -> list[Path]:
    """Completed WAL segments of a pgbench run (the last ``SEGMENTS``: mostly TPC-B updates)."""
    with server.connect() as conn:
        conn.autocommit = True
        conn.execute("ALTER SYSTEM SET full_page_writes = on")
        conn.execute("ALTER SYSTEM SET wal_keep_size = '4GB'")
        conn.execute("SELECT pg_reload_conf()")
    env = {**os.environ, "PGPASSWORD": server.password}
    base = ["-h", server.host, "-p", str(server.port), "-U", server.user]
    pgbench = str(Path(server.bindir) / "pgbench")
    subprocess.run([pgbench, "-i", "-q", "-s", "8", *base, "postgres"], check=True, env=env, capture_output=True)
    subprocess.run([pgbench, "-T", "12", "-c", "2", *base, "postgres"], check=True, env=env, capture_output=True)
    with server.connect() as conn:
        conn.autocommit = True
        current = conn.execute("SELECT pg_walfile_name(pg_current_wal_lsn())").fetchone()[0]  # type: ignore[index]
        conn.execute("SELECT pg_switch_wal()")
        conn.execute("CHECKPOINT")
    wal = Path(server.data_dir) / "pg_wal"
    done = sorted(p for p in wal.iterdir() if len(p.name) == 24 and p.name <= current)
    into.mkdir(parents=True)
    copies = []
    for path in done[-SEGMENTS:]:
        copy = into / path.name
        shutil.copyfile(path, copy)
        copies.append(copy)
    if len(copies) < SEGMENTS // 2:
        raise RuntimeError(f"pgbench wrote only {len(copies)} complete WAL segments")
    return copies


def segment_for(segments: list[Path], n: int, spool: Path) -> Path:
    """Segment ``n % len`` under a name no earlier round used (timeline 1, log 0x10 + n)."""
    path = spool / f"{1:08X}{0x10 + n:08X}{n % 256:08X}"
    if not path.exists():
        shutil.copyfile(segments[n % len(segments)], path)
    return path


# --- S3 on moto, over TLS ------------------------------------------------------------------------


def start_moto(work: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    cert, key = work / "moto.crt", work / "moto.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    moto = str(Path(sys.executable).with_name("moto_server"))
    process = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port), "-c", str(cert), "-k", str(key)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import boto3

    client = boto3.client(
        "s3", endpoint_url=f"https://127.0.0.1:{port}", verify=str(cert), region_name="us-east-1",
        aws_access_key_id="bench", aws_secret_access_key="bench",
    )  # fmt: skip
    for _ in range(100):
        try:
            client.create_bucket(Bucket=BUCKET)
            return process, port, cert
        except Exception:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the moto server did not start")


# --- the methods ---------------------------------------------------------------------------------


def pgbackrest_conf(work: Path, server: PostgresServer, storage: str, s3: tuple[int, Path] | None) -> Path:
    repo = (
        f"repo1-path={work / 'pgbr-repo'}\n"
        if storage == "local"
        else (
            "repo1-type=s3\nrepo1-path=/pgbackrest\n"
            f"repo1-s3-bucket={BUCKET}\nrepo1-s3-endpoint=localhost\nrepo1-storage-port={s3[0]}\n"  # type: ignore[index]
            f"repo1-s3-region=us-east-1\nrepo1-s3-key=bench\nrepo1-s3-key-secret=bench\n"
            f"repo1-s3-uri-style=path\nrepo1-storage-ca-file={s3[1]}\n"  # type: ignore[index]
        )
    )
    conf = work / f"pgbackrest-{storage}.conf"
    conf.write_text(
        "[global]\n" + repo + f"repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass={PASSPHRASE}\n"
        "compress-type=zst\ncompress-level=3\n"
        f"lock-path={work / 'pgbr-lock'}\nlog-path={work / 'pgbr-log'}\nlog-level-console=warn\nlog-level-file=off\n"
        "archive-async=n\n"
        "\n[bench]\n"
        f"pg1-path={server.data_dir}\npg1-socket-path={server.socket_dir}\npg1-port={server.port}\n"
        f"pg1-user={server.user}\n"
    )
    created = subprocess.run(
        ["pgbackrest", f"--config={conf}", "--stanza=bench", "stanza-create"], capture_output=True, text=True
    )
    if created.returncode != 0:
        raise RuntimeError(f"pgbackrest stanza-create failed: {(created.stdout + created.stderr).strip()[-1500:]}")
    return conf


def backstream_conf(work: Path, name: str, storage: str, encrypt: str, s3: tuple[int, Path] | None) -> Path:
    """A wal.toml for one backstream method (its own repository)."""
    conf = work / f"wal-{name}.toml"
    repo = str(work / f"bs-{name}") if storage == "local" else f"s3://{BUCKET}/bs-{name}"
    lines = [f'repo = "{repo}"', 'compress = "zstd:3"']
    if encrypt:
        lines.append(f'encrypt = ["{encrypt}"]')
    if s3 is not None:
        lines += ["", "[storage_options]", f'endpoint_url = "https://localhost:{s3[0]}"', 'key = "bench"']
        lines += ['secret = "bench"']
    conf.write_text("\n".join(lines) + "\n")
    env = bs_env(s3)
    init = [BACKSTREAM, "init", "--repo", repo]
    if s3 is not None:
        init += ["--storage-option", f"endpoint_url=https://localhost:{s3[0]}"]
    subprocess.run(init, check=True, capture_output=True, env=env)
    return conf


def bs_env(s3: tuple[int, Path] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(BACKSTREAM_PASSPHRASE=PASSPHRASE, BACKSTREAM_AUDIT_LOG="/dev/null", PASSPHRASE=PASSPHRASE)
    if s3 is not None:
        env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_CA_BUNDLE=str(s3[1]))
        env["AWS_DEFAULT_REGION"] = "us-east-1"
    return env


def public_key(work: Path) -> str:
    keystore = work / "keystore.json"
    subprocess.run([BACKSTREAM, "keys", "create", "--keystore", str(keystore), "--kind", "x25519"], check=True,
                   capture_output=True, env=bs_env(None))  # fmt: skip
    export = [BACKSTREAM, "keys", "export-public", f"local:{keystore}", "-o", str(work / "public.json")]
    return subprocess.run(export, check=True, capture_output=True, text=True, env=bs_env(None)).stdout.strip()


def methods(work: Path, server: PostgresServer, storage: str, s3: tuple[int, Path] | None) -> list[Method]:
    pgbr = pgbackrest_conf(work, server, storage, s3)
    found: list[Method] = []
    if storage == "local":
        out = shlex.quote(str(work / "shell"))
        (work / "shell").mkdir()
        found.append(
            Method(
                "shell: zstd -3 | openssl aes-256-cbc",
                storage,
                f"zstd -3 -q -c {{seg}} | openssl enc -aes-256-cbc -pbkdf2 -pass env:PASSPHRASE -out {out}/{{n}}",
            )
        )
    found.append(
        Method(
            "pgbackrest archive-push (zst:3, aes-256-cbc)",
            storage,
            f"pgbackrest --config={shlex.quote(str(pgbr))} --stanza=bench archive-push {{seg}}",
        )
    )
    public = (work / "public.ref").read_text()
    for name, encrypt in (("passphrase", "passphrase"), ("public", public), ("plain", "")):
        conf = backstream_conf(work, f"{storage}-{name}", storage, encrypt, s3)
        label = {"passphrase": "passphrase (Argon2id)", "public": "X25519 public key", "plain": "not encrypted"}[name]
        found.append(
            Method(
                f"backstream wal-push (zstd:3, {label})",
                storage,
                f"{shlex.quote(BACKSTREAM)} wal-push --config {shlex.quote(str(conf))} {{seg}}",
            )
        )
    return found


# --- measuring -----------------------------------------------------------------------------------


def measure(command: str, env: dict[str, str], *, check_others: bool) -> dict[str, Any]:
    for attempt in range(pgb.TRIES):
        busy_before = benchlib._machine_busy_seconds()
        before = os.times()
        started = time.perf_counter()
        done = subprocess.run(command, shell=True, env=env, capture_output=True, text=True, executable="/bin/bash")
        wall = time.perf_counter() - started
        after = os.times()
        if done.returncode != 0:
            raise RuntimeError(f"{command} failed: {done.stderr[-1500:]}")
        cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        other = max(0.0, benchlib._machine_busy_seconds() - busy_before - cpu)
        if not check_others or other <= pgb.MAX_OTHER_CPU * wall or attempt == pgb.TRIES - 1:
            return {"wall": round(wall, 4), "cpu": round(cpu, 4), "other_cpu": round(other, 4), "discarded": attempt}
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--storage", default="local", help="local and/or s3 (moto over TLS; see the docstring)")
    args = parser.parse_args(argv)
    ensure_pgbackrest()
    benchlib.precompile()
    work = Path(tempfile.mkdtemp(prefix="bench-wal-"))
    results: dict[str, Any] = {"machine": benchlib.machine(), "rounds": args.rounds, "methods": {}}
    moto: subprocess.Popen[bytes] | None = None
    try:
        with start_postgres() as server:
            segments = make_segments(server, work / "segments")
            sizes = [
                len(subprocess.run(["zstd", "-3", "-q", "-c", str(p)], capture_output=True).stdout) for p in segments
            ]
            results["segment_zstd3_bytes_median"] = statistics.median(sizes)
            print(f"{len(segments)} segments; zstd -3 median {statistics.median(sizes) / 2**20:.2f} MiB", flush=True)
            (work / "public.ref").write_text(public_key(work))
            spool = work / "spool"
            spool.mkdir()
            for storage in args.storage.split(","):
                s3 = None
                if storage == "s3":
                    moto, port, cert = start_moto(work)
                    s3 = (port, cert)
                found = methods(work, server, storage, s3)
                by_name = {m.name: m for m in found}
                env = bs_env(s3)
                samples: dict[str, list[dict[str, Any]]] = {name: [] for name in by_name}
                counter = 1000 if storage == "s3" else 0
                for n, name in rounds(args.rounds, list(by_name)):
                    counter += 1
                    seg = segment_for(segments, counter, spool)
                    command = by_name[name].command.format(seg=shlex.quote(str(seg)), n=counter)
                    sample = measure(command, env, check_others=storage == "local")
                    samples[name].append(sample)
                    print(f"{storage} round {n + 1} {name}: {sample}", flush=True)
                base = statistics.median(s["wall"] for s in samples[next(n for n in by_name if "pgbackrest" in n)])
                print(f"\n{storage}: one real 16 MiB segment, medians of {args.rounds} rounds\n")
                print("| method | wall ms (median) | spread | vs pgbackrest | CPU ms |")
                print("|---|---|---|---|---|")
                for name, rows in samples.items():
                    walls = [r["wall"] for r in rows]
                    median = statistics.median(walls)
                    cpu = statistics.median(r["cpu"] for r in rows)
                    print(f"| {name} | {median * 1000:.0f} | {min(walls) * 1000:.0f}-{max(walls) * 1000:.0f} "
                          f"| {median / base:.2f}x | {cpu * 1000:.0f} |")  # fmt: skip
                    results["methods"][f"{storage}: {name}"] = {"median_wall": median, "samples": rows}
                if moto is not None:
                    moto.terminate()
                    moto.wait()
                    moto = None
    finally:
        if moto is not None:
            moto.kill()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nsaved {benchlib.save('wal_side_by_side', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
