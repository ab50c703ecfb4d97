"""Issue 16: backstream against ``pg_dump | zstd -3 | openssl``, borg and restic, same database, same run.

Run: ``python benchmarks/bench_side_by_side.py [--data pysource,datagen] [--size 300MB] [--rounds 5]``
(results/side_by_side_<data>_<size>.json; installs Debian's borgbackup and restic when missing).

Every method backs up the same PostgreSQL 15 database over the same TCP URL and restores it into a
new database with the same psql settings (one transaction), the ``CREATE DATABASE`` timed for every
method (backstream's restore creates its target itself); rounds alternate the methods. Figures:
wall, CPU of the process tree (the server's separately), the peak RSS (VmHWM) of the largest process
in the tree other than pg_dump, psql and bash, and the bytes stored.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # the repository root, for tests.fixtures
import bench_pg_backup as pgb
import benchlib
import datagen
import pysource

from tests.fixtures.postgres import PostgresServer, start_postgres

BACKSTREAM = pgb.BACKSTREAM
PASSPHRASE = pgb.PASSPHRASE
IGNORED_FOR_RSS = {"pg_dump", "psql", "bash", "pg_restore"}
"""Processes whose peak RSS is not the tool's: the database clients every method runs, and the shell."""


@dataclass(frozen=True)
class Method:
    """One way to back up and restore: shell commands run by bash (``{url}``, ``{out}`` ... filled in)."""

    name: str
    backup: str
    restore: str
    repo: str  # "file": a single output file; "dir": a repository directory
    encrypted: bool | None = None  # backstream's: what its backup's JSON must say (checked every round)


def backstream_method(name: str, flags: str, restore_flags: str = "") -> Method:
    return Method(
        name,
        f"{BACKSTREAM} backup {{url}} --repo {{repo}} --json {flags} > {{idfile}}",
        f"{BACKSTREAM} restore $(jq -r .backup_id {{idfile}}) --repo {{repo}} --to {{target_url}}"
        f" --json {restore_flags} > /dev/null",
        "dir",
        encrypted="--encrypt" in flags,
    )


def methods(work: Path) -> list[Method]:
    psql = "{createdb} && psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d {target_url} > /dev/null"
    keystore = shlex.quote(str(work / "keystore.json"))
    return [
        Method(
            "shell: pg_dump | zstd -3 | openssl",
            "pg_dump {url} | zstd -3 -T1 -q | openssl enc -aes-256-ctr -pass pass:x -pbkdf2 > {out}",
            "openssl enc -d -aes-256-ctr -pass pass:x -pbkdf2 < {out} | zstd -d -q | (" + psql + ")",
            "file",
        ),
        # backstream encrypts only when told to (--encrypt); the "defaults" are the default
        # codec and cipher with a passphrase, as the shell pipeline, borg and restic all encrypt.
        backstream_method("backstream (defaults: zstd:3, passphrase)", "--encrypt passphrase"),
        backstream_method("backstream --encrypt PUBLIC (X25519)", "--encrypt {public}", f"--keystore {keystore}"),
        backstream_method("backstream --compress lz4, passphrase", "--compress lz4 --encrypt passphrase"),
        backstream_method("backstream --compress none, passphrase", "--compress none --encrypt passphrase"),
        backstream_method("backstream zstd:3, not encrypted", ""),
        Method(
            "borg create zstd,3 (repokey-blake2)",
            "pg_dump {url} | borg create --compression zstd,3 {repo}::b{n} -",
            "borg extract --stdout {repo}::b{n} | (" + psql + ")",
            "dir",
        ),
        Method(
            "restic backup --stdin (auto compression)",
            "pg_dump {url} | restic -q -r {repo} backup --stdin --stdin-filename dump.sql > /dev/null",
            "restic -q -r {repo} dump latest dump.sql | (" + psql + ")",
            "dir",
        ),
    ]


# --- measuring a process tree ----------------------------------------------------------------


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def _hwm(pid: int) -> tuple[str, int]:
    name, hwm = "", 0
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("Name:"):
                    name = line.split()[1]
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
                    break
    except (OSError, ValueError):
        pass
    return name, hwm


def measure(script: str, env: dict[str, str]) -> dict[str, Any]:
    """Run ``bash -c script``; wall, tree CPU, server CPU, other CPU and per-process-name peak RSS."""
    busy_before = benchlib._machine_busy_seconds()
    server_before = pgb.server_cpu_seconds()
    started = time.perf_counter()
    process = subprocess.Popen(["bash", "-c", "set -o pipefail; " + script], env=env, stderr=subprocess.PIPE)
    peaks: dict[str, int] = {}
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            todo = [process.pid]
            while todo:
                pid = todo.pop()
                name, hwm = _hwm(pid)
                if name:
                    peaks[name] = max(peaks.get(name, 0), hwm)
                todo += _children(pid)
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    assert process.stderr is not None
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    done.set()
    poller.join()
    busy = benchlib._machine_busy_seconds() - busy_before
    time.sleep(0.3)  # let the postmaster reap the backend that served us
    server = pgb.server_cpu_seconds() - server_before
    cpu = usage.ru_utime + usage.ru_stime
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"failed: {script}\n{err.decode(errors='replace')[-2000:]}")
    tool = {name: kib for name, kib in peaks.items() if name not in IGNORED_FOR_RSS}
    return {
        "wall": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "server_cpu_seconds": round(server, 3),
        "other_cpu_seconds": round(max(0.0, busy - cpu - server), 3),
        "peak_rss_mib": round(max(tool.values(), default=0) / 1024, 1),
        "peaks_mib": {name: round(kib / 1024, 1) for name, kib in sorted(peaks.items())},
    }


def undisturbed(run: Callable[[], dict[str, Any]], cleanup: Callable[[], None]) -> dict[str, Any]:
    for attempt in range(pgb.TRIES):
        result = run()
        result["discarded"] = attempt
        if result["other_cpu_seconds"] <= pgb.MAX_OTHER_CPU * result["wall"] or attempt == pgb.TRIES - 1:
            return result
        print(f"  disturbed ({result['other_cpu_seconds']} s of other CPU), again", flush=True)
        cleanup()
    raise AssertionError("unreachable")


def dir_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- the database ----------------------------------------------------------------------------


def load(server: PostgresServer, data: str, size: int) -> tuple[str, tuple[str, ...]]:
    """Create and fill database ``bench``; its tables."""
    if data == "datagen":
        pgb.load_database(server, "bench", size)
        return "bench", ("customers", "orders", "comments", "events")
    server.create_database("bench")
    pgb.psql(server, "bench", sql=pysource.DDL)
    process = subprocess.Popen(pgb.psql_argv(server, "bench"), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert process.stdin is not None
    for piece in pysource.copy_text(size):
        process.stdin.write(piece)
    process.stdin.close()
    if process.wait() != 0:
        raise RuntimeError("loading the data with psql failed")
    pgb.psql(server, "bench", sql=pysource.INDEXES)
    return "bench", pysource.TABLES


def fingerprint(server: PostgresServer, dbname: str, tables: tuple[str, ...]) -> dict[str, Any]:
    with server.connect(dbname) as conn:
        return {t: conn.execute(f"SELECT count(*), sum(hashtext(t::text)) FROM {t} t").fetchone() for t in tables}


def tool_env(server: PostgresServer, work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{server.bindir}:{env['PATH']}"
    env.update(
        BACKSTREAM_PASSPHRASE=PASSPHRASE,
        BACKSTREAM_AUDIT_LOG="/dev/null",
        BORG_PASSPHRASE=PASSPHRASE,
        RESTIC_PASSWORD=PASSPHRASE,
        BORG_BASE_DIR=str(work / "borg-home"),
        RESTIC_CACHE_DIR=str(work / "restic-cache"),
        BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
    )
    return env


def ensure_tools() -> None:
    wanted = (("borg", "borgbackup"), ("restic", "restic"), ("jq", "jq"))
    missing = [pkg for tool, pkg in wanted if not shutil.which(tool)]
    if missing:
        print(f"installing {' '.join(missing)} (apt-get)", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, stdout=subprocess.DEVNULL)


def init_repo(method: Method, path: Path, env: dict[str, str]) -> None:
    """A new, empty repository for ``method`` at ``path`` (nothing for a single output file)."""
    run = functools.partial(subprocess.run, env=env, check=True, capture_output=True, text=True)
    if method.repo == "file":
        return
    if method.name.startswith("backstream"):
        run([BACKSTREAM, "init", "--repo", str(path)])
    elif method.name.startswith("borg"):
        run(["borg", "init", "--encryption", "repokey-blake2", str(path)])
    elif method.name.startswith("restic"):
        run(["restic", "-r", str(path), "init"])


def make_keys(work: Path, env: dict[str, str]) -> None:
    run = functools.partial(subprocess.run, env=env, check=True, capture_output=True, text=True)
    run([BACKSTREAM, "keys", "create", "--keystore", str(work / "keystore.json"), "--kind", "x25519"])
    export = [BACKSTREAM, "keys", "export-public", f"local:{work / 'keystore.json'}", "-o", str(work / "public.json")]
    pgb.KEYS["public"] = run(export).stdout.strip()


def summarise(samples: dict[str, list[dict[str, Any]]], base_name: str) -> list[dict[str, Any]]:
    base = statistics.median(r["wall"] for r in samples[base_name])
    rows = []
    for name, runs in samples.items():
        walls = [r["wall"] for r in runs]
        wall = statistics.median(walls)
        rows.append(
            {
                "method": name,
                "median_wall": round(wall, 3),
                "spread": [min(walls), max(walls)],
                "vs_shell": round(wall / base, 3),
                "median_cpu_seconds": round(statistics.median(r["cpu_seconds"] for r in runs), 3),
                "median_server_cpu_seconds": round(statistics.median(r["server_cpu_seconds"] for r in runs), 3),
                "max_peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
                "stored_bytes": statistics.median(r.get("stored_bytes", 0) for r in runs),
            }
        )
    return rows


def table(rows: list[dict[str, Any]], *, stored: bool, borg: float | None) -> str:
    headers = ["method", "wall s (median)", "spread", "vs shell", "vs borg", "CPU s", "server CPU s", "peak RSS MiB"]
    if stored:
        headers.append("stored MB")
    lines = []
    for r in rows:
        row = [
            r["method"].replace("|", "\\|"),
            f"{r['median_wall']:.3f}",
            f"{r['spread'][0]:.2f}-{r['spread'][1]:.2f}",
            f"{r['vs_shell']:.2f}x",
            f"{r['median_wall'] / borg:.2f}x" if borg else "",
            r["median_cpu_seconds"],
            r["median_server_cpu_seconds"],
            r["max_peak_rss_mib"],
        ]
        if stored:
            row.append(f"{r['stored_bytes'] / 1e6:.1f}")
        lines.append(row)
    return benchlib.markdown_table(headers, lines)


def rounds(count: int, names: list[str]) -> Iterator[tuple[int, str]]:
    """Each round every method once; the order rotates so no method always follows the same one."""
    for round_ in range(count):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            yield round_, name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="pysource", help="pysource (Python source rows) or datagen, or both")
    parser.add_argument("--size", type=datagen.parse_size, default=datagen.parse_size("300MB"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--restore-rounds", type=int, default=None, help="default: --rounds")
    parser.add_argument("--methods", default="", help="comma-separated name prefixes to run (default: all)")
    args = parser.parse_args(argv)
    ensure_tools()
    benchlib.precompile()
    for data in args.data.split(","):
        run_one(data, args)
    return 0


def run_one(data: str, args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-sbs-"))
    backups: dict[str, list[dict[str, Any]]] = {}
    restores: dict[str, list[dict[str, Any]]] = {}
    facts: dict[str, Any] = {"data": data}
    try:
        with start_postgres() as server:
            pgb.SERVER_PID[:] = [int((Path(server.data_dir) / "postmaster.pid").read_text().split()[0])]
            started = time.perf_counter()
            dbname, tables = load(server, data, args.size)
            facts["load_seconds"] = round(time.perf_counter() - started, 1)
            expected = fingerprint(server, dbname, tables)
            env = tool_env(server, work)
            sizes = subprocess.run(
                f"pg_dump {shlex.quote(server.url(dbname))} | tee >(wc -c > {work}/plain) | zstd -3 -T1 -q | wc -c",
                shell=True, executable="/bin/bash", capture_output=True, text=True, check=True, env=env,
            )  # fmt: skip
            time.sleep(0.5)
            facts["plain_dump_bytes"] = int((work / "plain").read_text())
            facts["zstd3_ratio"] = round(facts["plain_dump_bytes"] / int(sizes.stdout), 2)
            with server.connect(dbname) as conn:
                facts["database_bytes"] = conn.execute("SELECT pg_database_size(%s)", (dbname,)).fetchone()[0]  # type: ignore[index]
            print(f"facts: {facts}", flush=True)
            wanted = [m for m in methods(work) if not args.methods or m.name.startswith(tuple(args.methods.split(",")))]
            by_name = {m.name: m for m in wanted}
            make_keys(work, env)
            names = list(by_name)

            def repo(name: str, n: int) -> Path:
                """Each backup goes into a new repository of its own (restored from there), so borg and
                restic cannot deduplicate against an earlier round's copy of the same data."""
                return work / f"repo-{names.index(name)}-{n}"

            admin = shlex.quote(server.url())

            def fill(template: str, name: str, n: int, target: str = "") -> str:
                return template.format(
                    url=shlex.quote(server.url(dbname)),
                    target_url=shlex.quote(server.url(target)) if target else "",
                    createdb=f"psql -X -q -d {admin} -c 'CREATE DATABASE {target} TEMPLATE template0'",
                    repo=shlex.quote(str(repo(name, n))),
                    out=shlex.quote(str(repo(name, n))),
                    idfile=shlex.quote(str(work / f"id-{names.index(name)}-{n}")),
                    public=shlex.quote(pgb.KEYS["public"]),
                    n=n,
                )

            for round_, name in rounds(args.rounds, names):
                method = by_name[name]
                init_repo(method, repo(name, round_), env)
                before = dir_bytes(repo(name, round_)) if method.repo == "dir" else 0
                result = undisturbed(
                    lambda method=method, name=name, round_=round_: measure(fill(method.backup, name, round_), env),
                    lambda: None,
                )
                result["stored_bytes"] = dir_bytes(repo(name, round_)) - before
                if method.encrypted is not None:
                    said = json.loads((work / f"id-{names.index(name)}-{round_}").read_text())["encrypted"]
                    if said is not method.encrypted:
                        raise RuntimeError(f"{name}: the backup is {'' if said else 'not '}encrypted")
                backups.setdefault(name, []).append(result)
                print(f"backup {round_ + 1} {name}: {result}", flush=True)
            restore_rounds = args.restore_rounds if args.restore_rounds is not None else args.rounds
            for round_, name in rounds(restore_rounds, names):
                method = by_name[name]
                target = f"restored_{names.index(name)}_{round_}"

                def restore(
                    method: Method = method, name: str = name, target: str = target, n: int = round_
                ) -> dict[str, Any]:
                    return measure(fill(method.restore, name, n % args.rounds, target), env)

                result = undisturbed(restore, functools.partial(server.drop_database, target))
                result["identical"] = fingerprint(server, target, tables) == expected
                if not result["identical"]:
                    raise RuntimeError(f"{name}: restored data differs")
                server.drop_database(target)
                restores.setdefault(name, []).append(result)
                print(f"restore {round_ + 1} {name}: {result}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = names[0]
    payload = {
        "machine": benchlib.machine(),
        "facts": facts,
        "backup_summary": summarise(backups, base),
        "restore_summary": summarise(restores, base),
        "backups": backups,
        "restores": restores,
    }
    label = f"side_by_side_{data}_{round(facts['plain_dump_bytes'] / 1e6)}MB"
    print(f"saved {benchlib.save(label, payload)}")
    mb = facts["plain_dump_bytes"] / 1e6
    for title, rows, stored in (
        ("backup", payload["backup_summary"], True),
        ("restore", payload["restore_summary"], False),
    ):
        borg = next((r["median_wall"] for r in rows if r["method"].startswith("borg")), None)
        print(f"\n{title} ({data}, {mb:.0f} MB plain dump):\n{table(rows, stored=stored, borg=borg)}")


if __name__ == "__main__":
    sys.exit(main())
