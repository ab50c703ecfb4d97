"""Issue 4: ``backstream backup``/``restore`` of a PostgreSQL 15 database against the shell pipeline
``pg_dump | zstd -3 -T1 | openssl enc -aes-256-ctr`` (and its reverse into psql), same database, same run.

Run: ``python benchmarks/bench_pg_backup.py [--size 256MiB] [--reps 3]`` (results/pg_backup.json).
Starts its own server the way tests/fixtures/postgres.py does (as the postgres user, a free port, in /tmp).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # the repository root, for tests.fixtures
import benchlib
import datagen

from tests.fixtures.postgres import PostgresServer, start_postgres

BACKSTREAM = str(Path(sys.executable).with_name("backstream"))
PASSPHRASE = "bench passphrase, not a secret"
OPENSSL_PASS = "x"

DDL = """
CREATE TABLE customers (id bigint, first_name text, last_name text, email text, phone text, city text,
  country text, created_at timestamptz, active boolean, balance numeric(12,2));
CREATE TABLE orders (id bigint, customer_id bigint, status text, items int, total numeric(12,2), currency text,
  placed_at timestamptz, shipped_at timestamptz, note text);
CREATE TABLE comments (id bigint, order_id bigint, author text, body text, rating int, created_at timestamptz);
CREATE TABLE events (id bigint, ts timestamptz, level text, service text, message text, payload json);
"""
INDEXES = """
ALTER TABLE customers ADD PRIMARY KEY (id);
ALTER TABLE orders ADD PRIMARY KEY (id);
ALTER TABLE comments ADD PRIMARY KEY (id);
ALTER TABLE events ADD PRIMARY KEY (id);
ANALYZE;
"""

VARIANTS: dict[str, list[str]] = {
    "backstream (defaults)": [],
    "backstream --catalog off": ["--catalog", "off"],
    "backstream --kdf-param m=8192": ["--kdf-param", "m=8192"],
    "backstream --encrypt local:PUBLIC (X25519)": ["--encrypt", "{public}"],
    "backstream --encrypt local:PUBLIC (X25519) --catalog off": ["--encrypt", "{public}", "--catalog", "off"],
}
"""Backup variants, each ``backstream backup URL --repo R --compress zstd:3 --encrypt passphrase`` + these
(a variant with its own ``--encrypt`` replaces the passphrase; ``{public}`` is the reference of an
X25519 key's public export, made by the script, whose full keystore the restores get)."""

KEYS: dict[str, str] = {}
"""``public``: the key reference of the public export; ``full``: the full keystore's path."""


# --- measuring a child process -----------------------------------------------------------------


SERVER_PID: list[int] = []
"""The postmaster's pid: its CPU time plus that of its reaped children (backends) is the server's share."""

MAX_OTHER_CPU = 0.10
"""A run during which processes other than ours and the server's used more than this share of one
CPU is repeated (up to ``TRIES`` times): another job on the machine, not ours, would set the figure."""
TRIES = 4


def server_cpu_seconds() -> float:
    if not SERVER_PID:
        return 0.0
    fields = Path(f"/proc/{SERVER_PID[0]}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


def measure(argv: Sequence[str], env: dict[str, str] | None = None, stdout: Any = None) -> dict[str, Any]:
    """Run ``argv``; wall seconds, the process's own peak RSS (VmHWM polled from /proc until it
    exits) and wait4's ru_maxrss (the largest of it and its reaped children, e.g. pg_dump)."""
    load = Path("/proc/loadavg").read_text().split()[:3]
    busy_before = benchlib._machine_busy_seconds()
    server_before = server_cpu_seconds()
    started = time.perf_counter()
    process = subprocess.Popen(list(argv), env=env, stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE)
    hwm = [0]
    done = threading.Event()

    def poll() -> None:
        path = f"/proc/{process.pid}/status"
        while not done.is_set():
            try:
                with open(path) as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            hwm[0] = max(hwm[0], int(line.split()[1]))
            except (OSError, ValueError):
                return
            time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    out = process.stdout.read() if process.stdout is not None else b""
    err = process.stderr.read() if process.stderr is not None else b""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    poller.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    busy = benchlib._machine_busy_seconds() - busy_before
    time.sleep(0.3)  # let the postmaster reap the backend that served us
    server = server_cpu_seconds() - server_before
    cpu = usage.ru_utime + usage.ru_stime
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({process.returncode}): {err.decode(errors='replace')[-2000:]}")
    return {
        "wall": round(wall, 3),
        "vm_hwm_mib": round(hwm[0] / 1024, 1),
        "ru_maxrss_tree_mib": round(usage.ru_maxrss / 1024, 1),
        "cpu_seconds": round(cpu, 3),
        "server_cpu_seconds": round(server, 3),
        "other_cpu_seconds": round(max(0.0, busy - cpu - server), 3),
        "load_before": load,
        "stdout": out.decode(errors="replace"),
    }


# --- the database ------------------------------------------------------------------------------


def psql_argv(server: PostgresServer, dbname: str) -> list[str]:
    argv = [f"{server.bindir}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", server.socket_dir]
    return [*argv, "-p", str(server.port), "-U", server.user, "-d", dbname]


def psql(server: PostgresServer, dbname: str, *args: str, stdin: Any = None, sql: str | None = None) -> None:
    argv = [*psql_argv(server, dbname), *args]
    if sql is not None:
        argv += ["-c", sql]
    subprocess.run(argv, stdin=stdin, check=True, stdout=subprocess.DEVNULL)


def load_database(server: PostgresServer, dbname: str, size: int) -> None:
    """Four tables filled from datagen's COPY text (its per-block table names folded into four)."""
    server.create_database(dbname)
    psql(server, dbname, sql=DDL)
    path = datagen.sample_file(size)
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 4 * 2**20))
        end = handle.tell() + handle.read().rindex(b"\\.\n\n") + 4  # whole COPY blocks only
    copy_line = re.compile(rb"^(COPY public\.[a-z]+)_p\d+ ")
    process = subprocess.Popen(psql_argv(server, dbname), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert process.stdin is not None
    with open(path, "rb") as handle:  # streamed, so this process stays small (see measure())
        left = end
        for line in handle:
            if left <= 0:
                break
            line = line[:left]
            left -= len(line)
            process.stdin.write(copy_line.sub(rb"\1 ", line) if line.startswith(b"COPY ") else line)
    process.stdin.close()
    if process.wait() != 0:
        raise RuntimeError("loading the data with psql failed")
    psql(server, dbname, sql=INDEXES)


def counts(server: PostgresServer, dbname: str) -> dict[str, int]:
    with server.connect(dbname) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("customers", "orders", "comments", "events")
        }


# --- the runs --------------------------------------------------------------------------------


def shell_backup(server: PostgresServer, dbname: str, out: Path) -> dict[str, Any]:
    url = server.url(dbname)
    script = (
        f"set -o pipefail; {server.bindir}/pg_dump {shlex.quote(url)} | zstd -3 -T1 -q"
        f" | openssl enc -aes-256-ctr -pass pass:{OPENSSL_PASS} -pbkdf2 > {shlex.quote(str(out))}"
    )
    result = measure(["bash", "-c", script])
    result["bytes_out"] = out.stat().st_size
    return result


def shell_restore(server: PostgresServer, source: Path, dbname: str) -> dict[str, Any]:
    server.create_database(dbname)
    psql_argv = f"{server.bindir}/psql -X -q -v ON_ERROR_STOP=1 --single-transaction -h {server.socket_dir}"
    psql_argv += f" -p {server.port} -U {server.user} -d {dbname}"
    script = (
        f"set -o pipefail; openssl enc -d -aes-256-ctr -pass pass:{OPENSSL_PASS} -pbkdf2 < {shlex.quote(str(source))}"
        f" | zstd -d -q | {psql_argv} > /dev/null"
    )
    return measure(["bash", "-c", script])


def bs_env() -> dict[str, str]:
    env = dict(os.environ)
    env["BACKSTREAM_PASSPHRASE"] = PASSPHRASE
    env["BACKSTREAM_AUDIT_LOG"] = "/dev/null"
    return env


def make_keys(work: Path) -> None:
    """An X25519 key in a full keystore (passphrase PASSPHRASE) and its public export."""
    full, public = work / "keystore.json", work / "public.json"
    run = functools.partial(subprocess.run, env=bs_env(), check=True, capture_output=True, text=True)
    run([BACKSTREAM, "keys", "create", "--keystore", str(full), "--kind", "x25519"])
    KEYS["public"] = run([BACKSTREAM, "keys", "export-public", f"local:{full}", "-o", str(public)]).stdout.strip()
    KEYS["full"] = str(full)


def bs_backup(server: PostgresServer, dbname: str, repo: Path, extra: Sequence[str]) -> dict[str, Any]:
    argv = [BACKSTREAM, "backup", server.url(dbname), "--repo", str(repo), "--compress", "zstd:3"]
    extra = [arg.format(**KEYS) for arg in extra]
    argv += ([] if "--encrypt" in extra else ["--encrypt", "passphrase"]) + ["--json", *extra]
    result = measure(argv, env=bs_env())
    result["backup_id"] = json.loads(result["stdout"])["backup_id"]
    return result


def bs_restore(server: PostgresServer, repo: Path, backup_id: str, dbname: str) -> dict[str, Any]:
    argv = [BACKSTREAM, "restore", backup_id, "--repo", str(repo), "--to", server.url(dbname), "--json"]
    argv += ["--keystore", KEYS["full"]]
    return measure(argv, env=bs_env())


def undisturbed(run: Callable[[], dict[str, Any]], cleanup: Callable[[], None] | None = None) -> dict[str, Any]:
    """``run()`` again while other processes used more than ``MAX_OTHER_CPU`` of a CPU meanwhile."""
    for attempt in range(TRIES):
        result = run()
        result["discarded"] = attempt
        if result["other_cpu_seconds"] <= MAX_OTHER_CPU * result["wall"] or attempt == TRIES - 1:
            return result
        print(f"  disturbed ({result['other_cpu_seconds']} s of other CPU), again", flush=True)
        if cleanup is not None:
            cleanup()
    raise AssertionError("unreachable")


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=datagen.parse_size, default=datagen.parse_size("256MiB"))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--restore-reps", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names from VARIANTS")
    parser.add_argument("--results", default="pg_backup", help="results/NAME.json to write")
    args = parser.parse_args(argv)
    variants = {name: VARIANTS[name] for name in args.variants.split(",") if name}
    benchlib.precompile()

    work = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    runs: dict[str, list[dict[str, Any]]] = {}
    restores: dict[str, list[dict[str, Any]]] = {}
    facts: dict[str, Any] = {}
    try:
        with start_postgres() as server:
            SERVER_PID.append(int((Path(server.data_dir) / "postmaster.pid").read_text().split()[0]))
            started = time.perf_counter()
            load_database(server, "bench", args.size)
            facts["load_seconds"] = round(time.perf_counter() - started, 1)
            facts["rows"] = counts(server, "bench")
            with server.connect("bench") as conn:
                facts["database_size_bytes"] = conn.execute("SELECT pg_database_size('bench')").fetchone()[0]  # type: ignore[index]
                facts["server_version"] = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            dump = subprocess.run(
                f"{server.bindir}/pg_dump {shlex.quote(server.url('bench'))} | tee >(wc -c > {work}/plain) "
                f"| zstd -3 -T1 -q | wc -c",
                shell=True,
                executable="/bin/bash",
                capture_output=True,
                text=True,
                check=True,
            )
            time.sleep(0.5)
            facts["plain_dump_bytes"] = int((work / "plain").read_text())
            facts["zstd3_bytes"] = int(dump.stdout)
            facts["zstd3_ratio"] = round(facts["plain_dump_bytes"] / facts["zstd3_bytes"], 2)
            print(f"facts: {facts}", flush=True)
            repo = work / "repo"
            subprocess.run([BACKSTREAM, "init", "--repo", str(repo)], check=True, capture_output=True)
            make_keys(work)
            shell_file = work / "dump.sql.zst.enc"
            ids: dict[str, str] = {}
            for rep in range(args.reps):  # interleaved: drift hits every method alike
                for name in ["shell", *variants]:
                    if name == "shell":
                        result = undisturbed(functools.partial(shell_backup, server, "bench", shell_file))
                    else:
                        result = undisturbed(functools.partial(bs_backup, server, "bench", repo, variants[name]))
                        ids[name] = result["backup_id"]
                    result.pop("stdout", None)
                    runs.setdefault(name, []).append(result)
                    print(f"backup {rep + 1} {name}: {result}", flush=True)
            facts["repository_bytes_after_backups"] = dir_size(repo)
            n = 0
            for rep in range(args.restore_reps):
                for name in ["shell", *variants]:
                    n += 1
                    target = f"restored_{n}"
                    drop = functools.partial(server.drop_database, target)
                    if name == "shell":
                        result = undisturbed(functools.partial(shell_restore, server, shell_file, target), drop)
                    else:
                        result = undisturbed(functools.partial(bs_restore, server, repo, ids[name], target), drop)
                    result.pop("stdout", None)
                    result["rows_match"] = counts(server, target) == facts["rows"]
                    server.drop_database(target)
                    restores.setdefault(name, []).append(result)
                    print(f"restore {rep + 1} {name}: {result}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def summary(table: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
        base = statistics.median(r["wall"] for r in table["shell"])
        rows = []
        for name, samples in table.items():
            wall = statistics.median(r["wall"] for r in samples)
            rows.append(
                {
                    "method": name,
                    "median_wall": round(wall, 3),
                    "vs_shell": round(wall / base, 3),
                    "mb_per_s_of_plain_dump": round(facts["plain_dump_bytes"] / wall / 1e6, 1),
                    "max_vm_hwm_mib": max(r["vm_hwm_mib"] for r in samples),
                    "max_ru_maxrss_tree_mib": max(r["ru_maxrss_tree_mib"] for r in samples),
                    "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in samples),
                    "walls": [r["wall"] for r in samples],
                }
            )
        return rows

    facts["bench_script_vm_hwm_mib"] = round(benchlib.vm_hwm_kib() / 1024, 1)  # a floor of ru_maxrss_tree
    payload = {
        "machine": benchlib.machine(),
        "facts": facts,
        "backup_summary": summary(runs),
        "restore_summary": summary(restores),
        "backups": runs,
        "restores": restores,
    }
    print(f"saved {benchlib.save(args.results, payload)}")
    headers = ["method", "median s", "vs shell", "MB/s (plain dump)", "VmHWM MiB", "ru_maxrss tree MiB", "CPU s"]
    for title, rows in (("backup", payload["backup_summary"]), ("restore", payload["restore_summary"])):
        print(f"\n{title}:")
        print(
            benchlib.markdown_table(
                headers,
                [
                    (
                        r["method"],
                        r["median_wall"],
                        f"{r['vs_shell']:.2f}x",
                        r["mb_per_s_of_plain_dump"],
                        r["max_vm_hwm_mib"],
                        r["max_ru_maxrss_tree_mib"],
                        r["median_cpu_seconds"],
                    )
                    for r in rows
                ],
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
