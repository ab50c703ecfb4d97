"""PostgreSQL's own checks of a restored physical backup: ``pg_verifybackup`` (every file against
pg_basebackup's backup_manifest: sizes and checksums, and the WAL the backup includes) and
``pg_amcheck`` (heap and btree consistency of every database of a running server).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import anyio
from backstream import CheckResult, kill_tool, open_tool
from backstream.verify.report import FAIL, PASS, SKIP, includes

OUTPUT_LIMIT = 64 * 1024
SHOWN_PROBLEMS = 3


async def run_tool(argv: Sequence[str]) -> tuple[int, str]:
    """Run a tool to its end (killed with its process group if cancelled); its exit status and
    the last OUTPUT_LIMIT bytes of what it printed (stdout and stderr together)."""
    with tempfile.TemporaryFile() as output:
        try:
            process = await open_tool(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
        except OSError as exc:
            return 127, f"cannot run {argv[0]}: {exc.strerror or exc}"
        try:
            code = await process.wait()
        finally:
            with anyio.CancelScope(shield=True):
                kill_tool(process)
                await process.aclose()
        size = output.seek(0, 2)
        output.seek(max(0, size - OUTPUT_LIMIT))
        return code, output.read().decode("utf-8", "replace")


def _problems(text: str, marker: str | None = None) -> str:
    """The first few problems a tool reported, in one line (``and N more``): a line and the
    indented lines after it are one problem (pg_amcheck's form); with ``marker``, only lines
    holding it count, from after it (``error:``)."""
    problems: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith((" ", "\t")) and problems:
            problems[-1] += " " + line.strip()
        elif marker is None:
            problems.append(line.strip())
        elif marker in line:
            problems.append(line.split(marker, 1)[1].strip())
    shown = "; ".join(problems[:SHOWN_PROBLEMS])
    more = f" (and {len(problems) - SHOWN_PROBLEMS} more)" if len(problems) > SHOWN_PROBLEMS else ""
    return (shown + more) or "no detail printed"


async def verify_files(bindir: Path, data_dir: Path, *, wal_included: bool, ignore: Sequence[str]) -> CheckResult:
    """``pg_verifybackup`` of the restored data directory, before the server changes anything.
    ``ignore``: files backstream wrote or rewrote; with ``wal_included`` (``-X fetch``) the WAL in
    pg_wal is parsed too, else it is left to the recovery."""
    tool = bindir / "pg_verifybackup"
    if not tool.is_file():
        return CheckResult("manifest", SKIP, f"pg_verifybackup is not installed in {bindir} (PostgreSQL 13 and later)")
    if not (data_dir / "backup_manifest").is_file():
        return CheckResult("manifest", SKIP, "the base backup has no backup_manifest (pg_basebackup --no-manifest)")
    argv = [str(tool)]
    for path in ignore:
        argv += ["-i", path]
    if not wal_included:
        argv.append("-n")
    code, output = await run_tool([*argv, str(data_dir)])
    if code == 0:
        wal = "and the WAL it includes" if wal_included else "(WAL is checked by the recovery)"
        return CheckResult("manifest", PASS, f"file sizes and checksums match backup_manifest {wal}")
    return CheckResult("manifest", FAIL, f"pg_verifybackup: {_problems(output, 'error:')}")


async def amcheck_cluster(
    bindir: Path, *, host: str, port: int, user: str, maintenance_db: str, level: str
) -> CheckResult | None:
    """``pg_amcheck --all`` of the running drill server (heap and btree indexes; with
    ``--heapallindexed --parent-check`` at the comprehensive level); None when it is not installed."""
    tool = bindir / "pg_amcheck"
    if not tool.is_file():
        return None
    argv = [str(tool), "--all", "--install-missing", "--no-password", "-h", host, "-p", str(port), "-U", user]
    argv += ["--maintenance-db", maintenance_db]
    deep = includes(level, "comprehensive")
    if deep:
        argv += ["--heapallindexed", "--parent-check"]
    code, output = await run_tool(argv)
    what = "heap, btree with --heapallindexed --parent-check" if deep else "heap and btree"
    if code == 0:
        return CheckResult("pg_amcheck", PASS, f"every database checked ({what}): no corruption")
    if code == 2:
        return CheckResult("pg_amcheck", FAIL, f"corruption found: {_problems(output)}")
    return CheckResult("pg_amcheck", FAIL, f"pg_amcheck failed (exit status {code}): {_problems(output)}")
